"""Diffusion for both stages of segsynth: a mask generator (Stage I) and a mask-to-image translator (Stage II).

Ho et al. (2020), "Denoising Diffusion Probabilistic Models", trained with the v-prediction
objective of Salimans & Ho (2022) by default and sampled with the deterministic DDIM sampler of
Song et al. (2021) in a configurable number of steps. The network (``UNet2DModel``) and both
noise schedulers (``DDPMScheduler`` for training, ``DDIMScheduler`` for sampling) come from
Hugging Face ``diffusers``, an optional dependency (``pip install 'segsynth[diffusion]'``);
the plugin registers and documents itself without it, and building a component without it is a
user error that names the extra. ``plugin.py`` registers the two components; the network,
schedulers, loss and sampler they share live in ``denoiser.py``, their shared recipe fields in
``params.py``. docs/diffusion.md explains the design choices.
"""
