"""An example third-party segsynth plugin, written only against segsynth's public API.

It exists to show (and to test, in segsynth's CI) that a package outside the segsynth
repository can add components exactly like the built-in ones: a small residual mask-to-image
translator (``example_residual``) and a procedural data set of textured shapes
(``example_shapes``). ``plugin.py`` registers both; each lives in its own module beside it.
"""
