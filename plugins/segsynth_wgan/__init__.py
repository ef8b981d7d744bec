"""Stage I of segsynth, second architecture: a Wasserstein GAN with gradient penalty that draws masks.

Gulrajani et al. (2017), "Improved Training of Wasserstein GANs": the discriminator becomes a
*critic* whose score difference between real and generated masks estimates the Wasserstein-1
distance, kept 1-Lipschitz by penalising its input-gradient norm away from 1 on random
interpolates. The critic is trained several times per generator step, so its gradients stay
informative instead of saturating, which is the failure of a plain DCGAN on tiny mask sets.
Like the ``dcgan`` plugin it thresholds fakes with a straight-through estimator, augments the
critic's inputs differentiably and samples from an EMA generator. The component is
``segsynth_wgan.component.WGANGPMaskGenerator`` (recipe name ``wgan_gp``).
"""
