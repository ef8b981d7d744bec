"""Stage II of segsynth: the pix2pix conditional GAN that renders an image from a mask.

Isola et al. (2017), "Image-to-Image Translation with Conditional Adversarial Networks": a
U-Net generator with skip connections (dropout as its only noise source) trained against a
PatchGAN discriminator that judges (mask, image) pairs patch by patch, plus an L1 term that
keeps the rendering close to the real image. ``plugin.py`` registers the translator; the
networks, losses and augmentation live in their own modules beside it.
"""
