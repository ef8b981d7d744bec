"""Built-in procedural data sets: fundus-like retina images with vessel trees, and nuclei images.

They exist so that every part of segsynth can be run, tested and demonstrated without access to
private medical data: each sample is drawn from its own seed, so a "data set" is just a few
parameters, identical on every machine and at any resolution.
"""
