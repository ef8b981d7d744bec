"""``paired_folders``: any new domain's (image, mask) files, found by glob and paired by name.

Built-in dataset plugin of segsynth (entry point ``folders``). The adapter is in ``adapter.py``,
its parameters in ``params.py``, how file names become ids and pairs in ``matching.py`` and the
train/test split in ``splits.py``.
"""
