"""The steps of a run, one job per module; ``segsynth.pipeline`` puts them in order.

* ``components``  building the recipe's components (data set, stages, evaluators), seeded
* ``strategy``    one process, or many under torchrun: who checks, claims and writes the folder
* ``record``      the run's own files: resolved recipe, environment
* ``derive``      Stage II's training pairs, with masks derived by a segmenter if asked
* ``synthesis``   drawing the synthetic pairs batch by batch and writing them as files
* ``evaluation``  the recipe's evaluators, sharing one context; ``metrics.json``

Paths come from ``segsynth.folders.RunFolder``; no step spells a run-folder file name.
"""
