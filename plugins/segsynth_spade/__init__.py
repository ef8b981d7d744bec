"""Stage II of segsynth, second architecture: SPADE, a mask-to-image GAN whose normalisation sees the mask.

Park et al. (2019), "Semantic Image Synthesis with Spatially-Adaptive Normalization": the
generator does not encode the mask at all. It starts from a small tensor and upsamples through
residual blocks in which every normalisation layer is followed by a per-pixel scale and shift
predicted from the mask at that layer's resolution, so the layout cannot be "washed away" by
normalisation as it can in an encoder-decoder. A multi-scale PatchGAN with feature matching
judges (mask, image) pairs. ``plugin.py`` registers the translator (recipe name ``spade``);
the modulation layer, networks, losses and augmentation live in their own modules beside it.
"""
