"""Stage-I mask statistics and the privacy audit of synthetic pairs.

Two model-free evaluators that answer questions the U-Net utility test cannot:

- ``mask_statistics``: do the generated masks have the real masks' *shape* (vessel density,
  fragmentation, tree length, branching, calibre)? A Stage-I generator can fool a segmenter and
  still draw vessel trees no anatomy has.
- ``privacy_audit``: does any synthetic sample sit closer to a training record than an unseen
  real patient would (distance to closest record, calibrated on the real held-out split)? A
  generator that memorises its few private training images leaks them.
"""
