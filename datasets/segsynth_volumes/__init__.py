"""``volume_slices``: 2-D slices of NIfTI, DICOM and TIFF volumes, with their label volumes.

Built-in dataset plugin of segsynth (entry point ``volumes``). The adapter is in ``adapter.py``
and its parameters in ``params.py``. Reading is one function, ``volume.read_volume``, that
detects the format and hands the file to one reader module per format (``nifti``, ``dicom``,
``tiff``, ``picture``); the format libraries are optional extras, imported only when a file
needs them (``extras.py``). What happens to a volume afterwards has one module per step:
intensity windowing (``window.py``), foreground from label values (``labels.py``) and slice
selection (``slicing.py``). Files are found and paired by ``segsynth.pairing`` and split by
``segsynth.splits``, exactly as ``paired_folders`` does.
"""
