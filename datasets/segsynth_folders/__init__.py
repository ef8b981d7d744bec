"""``paired_folders``: any new domain's (image, mask) files, found by glob and paired by name.

Built-in dataset plugin of segsynth (entry point ``folders``). The adapter is in ``adapter.py``,
its parameters in ``params.py``. How file names become ids and pairs (``segsynth.pairing``) and
the train/test split (``segsynth.splits``) are in core, shared with other adapters.
"""
