"""``drive``: the DRIVE retinal vessel data set, read from its official folder layout or zip.

Built-in dataset plugin of segsynth (entry point ``drive``). DRIVE's terms forbid
redistribution, so nothing of it ships here: the user downloads it from
https://drive.grand-challenge.org/ and names the download in the recipe. ``source.py`` reads
files from a folder or straight from the zip, ``layout.py`` knows DRIVE's file names,
``adapter.py`` turns them into ``PairSet``s.
"""
