"""Stage I of segsynth: a DCGAN (Radford et al. 2015) that learns to draw segmentation masks.

Guibas, Virdi & Li (2017) generate vessel masks with a plain DCGAN before translating them to
images. This package adds what makes that work on the 20-mask sets the tool is meant for:
differentiable (optionally adaptive) augmentation of the discriminator's inputs, an EMA
generator for sampling, and optional hinge loss, spectral norm and lazy R1 regularisation.
The component is ``segsynth_dcgan.component.DCGANMaskGenerator`` (recipe name ``dcgan``).
"""
