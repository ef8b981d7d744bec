"""BBBC nuclei data sets: BBBC039, BBBC038 (Data Science Bowl 2018) and built-in BBBC039 crops.

Built-in dataset plugin of segsynth (entry point ``bbbc``). Each adapter is in its own module
(``bbbc039.py``, ``bbbc038.py``, ``crops.py``) and shares the steps between files and tensors:
``labels.py`` turns label images into instance labels and mask channels (foreground, optional
boundary between touching nuclei), ``intensity.py`` stretches intensities by percentiles,
``assemble.py`` cuts full-resolution tiles (``segsynth.tiling``) and makes the ``PairSet``;
``splits.py`` decides train and test. The crops that ship in ``data/`` were made by
``tools/make_bbbc_crops.py``; ``data/CREDITS.md`` says where they come from.
"""
