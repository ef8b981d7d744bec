"""placeholder, replaced by the plugin author."""
