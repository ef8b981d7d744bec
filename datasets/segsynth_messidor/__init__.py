"""MESSIDOR fundus photographs (images only), for masks derived later by a vessel segmenter.

Built-in dataset plugin of segsynth (entry point ``messidor``). The adapter is in
``adapter.py``, its parameters in ``params.py``; ``layout.py`` finds the ``BaseNN`` folders and
their TIFFs, ``annotations.py`` reads the optional CSV export of each base's grading
spreadsheet, ``fov.py`` derives the circular field of view and ``splits.py`` draws the
subset and the train/test split.
"""
