"""The denoising model both diffusion components share: U-Net, weight average, schedules, loss, sampler.

Everything diffusion-specific comes from Hugging Face ``diffusers``: the network is a
``UNet2DModel`` built from a config (never downloaded), training noises samples with a
``DDPMScheduler`` and sampling walks a ``DDIMScheduler`` over the same noise levels. What this
module adds is the segsynth side: conditioning by concatenation, the random draws (from torch's
global RNG while training, so the trainer's checkpoints restore them; from the caller's generator
while sampling), the resumable loop through ``segsynth.gan.train_loop`` and bf16 autocast.

Conditioning (Stage II): the mask, scaled to ``[-1, 1]``, is concatenated to the noisy image as
extra input channels, so the U-Net's first convolution sees mask and image pixel by pixel at every
denoising step. For a pixel-aligned condition that is the simple, robust choice (Saharia et al.
2022, "Palette"; SR3): nothing has to be learnt to locate the mask, no extra module or embedding
is needed, and a 20-image data set trains it. Cross-attention or class embeddings exist for
conditions that are *not* aligned with the pixels (text, labels).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segsynth import Trainer, UserError
from segsynth.gan import make_ema, train_loop
from segsynth_diffusion.params import BETA_SCHEDULES, DiffusionParams

if TYPE_CHECKING:  # pragma: no cover
    from torch.optim.swa_utils import AveragedModel

#: The optional extra that brings in diffusers; named by every message about it.
EXTRA = "segsynth[diffusion]"


def import_diffusers() -> Any:
    """The ``diffusers`` module, or a user error (exit 2) naming the extra that installs it."""
    try:
        import diffusers
    except ImportError as exc:
        raise UserError(
            f"the diffusion components need the optional package diffusers, which cannot be "
            f"imported here ({exc}); install it with: pip install '{EXTRA}' "
            f"(or, in a checkout: pip install -e '.[diffusion]')"
        ) from exc
    return diffusers


def unet_config(params: DiffusionParams, size: tuple[int, int], in_channels: int, out_channels: int) -> dict[str, Any]:
    """The ``UNet2DModel`` keyword arguments for ``params`` (a plain dict: what a checkpoint needs to rebuild it)."""
    levels = len(params.widths)
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if params.attention:  # at the coarsest resolution only, as DDPM does at 16x16
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return {
        "sample_size": tuple(size),
        "in_channels": in_channels,
        "out_channels": out_channels,
        "block_out_channels": tuple(params.widths),
        "down_block_types": tuple(down),
        "up_block_types": tuple(up),
        "layers_per_block": params.layers_per_block,
        "norm_num_groups": params.norm_groups,
        "dropout": params.dropout,
        "add_attention": params.attention,
        "attention_head_dim": min(params.widths[-1], 32) if params.attention else None,
    }


def schedule_config(params: DiffusionParams) -> dict[str, Any]:
    """The keyword arguments both schedulers share: noise levels, schedule, prediction target.

    ``clip_sample`` (the recipe's, on by default) keeps DDIM's estimate of the clean sample inside
    ``[-1, 1]``, where images and masks live: early, very noisy steps cannot overshoot. The price
    is a bias near the edges of the range: an estimate of a value at -0.94 is clipped on one side
    only, so its mean moves inward at every step (a dark background renders brighter).
    """
    return {
        "num_train_timesteps": params.train_timesteps,
        "beta_schedule": BETA_SCHEDULES[params.noise_schedule],
        "prediction_type": params.prediction,
        "clip_sample": params.clip_sample,
        "clip_sample_range": 1.0,
    }


def check_size(who: str, params: DiffusionParams, size: tuple[int, int]) -> None:
    """The U-Net halves the size ``len(widths) - 1`` times: each side must divide evenly."""
    factor = 2 ** (len(params.widths) - 1)
    height, width = size
    if height % factor or width % factor:
        fits = [n for n in range(1, len(params.widths)) if height % 2 ** (n - 1) == 0 and width % 2 ** (n - 1) == 0]
        raise UserError(
            f"{who} with {len(params.widths)} widths halves the size {len(params.widths) - 1} times, so "
            f"both sides must be divisible by {factor}, but the samples are {height}x{width}; "
            f"use at most {fits[-1]} widths or a size divisible by {factor}."
        )


class Denoiser:
    """A ``UNet2DModel`` that predicts noise (or v) from a noisy sample, optionally with condition channels.

    ``condition_channels`` extra input channels carry the condition (the mask, for Stage II),
    concatenated after the noisy sample; 0 makes an unconditional model (Stage I).
    """

    def __init__(
        self, who: str, params: DiffusionParams, size: tuple[int, int], channels: int, condition_channels: int = 0,
    ) -> None:
        diffusers = import_diffusers()
        check_size(who, params, size)
        self.who = who
        self.params = params
        self.size = tuple(size)
        self.channels = channels
        self.condition_channels = condition_channels
        self.config = unet_config(params, self.size, channels + condition_channels, channels)
        self._unet_class = diffusers.UNet2DModel
        self._ddim_class = diffusers.DDIMScheduler
        self.unet: nn.Module = self._unet_class(**self.config)
        self.ema: AveragedModel | None = make_ema(self.unet, params.ema_decay) if params.ema_decay > 0 else None
        self.opt = torch.optim.Adam(self.unet.parameters(), lr=params.lr, betas=params.betas)
        self.noising = diffusers.DDPMScheduler(**schedule_config(params))

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """The U-Net, its optimizer and (when enabled) its weight average: all a resume needs."""
        state: dict[str, Any] = {"unet": self.unet, "opt": self.opt}
        if self.ema is not None:
            state["ema"] = self.ema
        return state

    def sampling_network(self) -> nn.Module:
        """What samples are drawn from: the weight average when enabled, else the live U-Net."""
        return self.ema.module if self.ema is not None else self.unet

    def reinitialise(self, generator: torch.Generator) -> None:
        """Initial weights drawn from ``generator`` alone (the run seed), not from what ran before.

        diffusers initialises its layers from torch's global RNG; a fresh U-Net is built under a
        forked CPU RNG seeded from ``generator`` and its weights copied in, so the global stream
        that drives training is untouched. Called before the first step, while the weight average
        is still empty (it copies the live weights at its first update).
        """
        seed = int(torch.randint(2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = self._unet_class(**self.config)
        self.unet.load_state_dict(fresh.state_dict())

    # ------------------------------------------------------------------ training
    def fit(
        self,
        trainer: Trainer,
        desc: str,
        draw: Callable[[], tuple[Tensor, Tensor | None]],
        init_generator: Callable[[], torch.Generator],
    ) -> None:
        """Train for ``params.steps`` steps on batches from ``draw()`` (clean sample, condition or None)."""
        for module in self.state().values():
            if isinstance(module, nn.Module):
                trainer.setup(module)
        self.unet.train()
        train_loop(
            trainer,
            self.state(),
            steps=self.params.steps,
            desc=desc,
            log_every=self.params.log_every,
            train_step=lambda step: {"loss": self.train_step(*draw(), trainer)},
            fresh_start=lambda: self.reinitialise(init_generator()),
        )

    def train_step(self, clean: Tensor, condition: Tensor | None, trainer: Trainer) -> Tensor:
        """One denoising update: noise ``clean`` to random levels, predict the target, step Adam.

        The levels and the noise are drawn on the CPU from torch's global RNG (the same numbers on
        every device, restored by a resume) and then moved to the device.
        """
        n = clean.shape[0]
        timesteps = trainer.to_device(torch.randint(self.params.train_timesteps, (n,)))
        noise = trainer.to_device(torch.randn(clean.shape))
        noisy = self.noising.add_noise(clean, noise, timesteps)
        if self.params.prediction == "v_prediction":
            target = self.noising.get_velocity(clean, noise, timesteps)
        else:
            target = noise
        inputs = noisy if condition is None else torch.cat([noisy, condition], dim=1)
        with trainer.autocast():
            predicted = trainer.wrapped(self.unet)(inputs, timesteps, return_dict=False)[0]
        loss = F.mse_loss(predicted.float(), target.float())
        trainer.backward(loss)
        trainer.step(self.opt)
        if self.ema is not None:
            self.ema.update_parameters(self.unet)
        return loss.detach()

    # ------------------------------------------------------------------ sampling
    def sample(self, noise: Tensor, condition: Tensor | None, batch_size: int) -> Tensor:
        """Denoise ``noise`` (CPU, standard normal) with ``params.sampling_steps`` DDIM steps; CPU result.

        DDIM with ``eta = 0`` adds no noise after the start, so the result is a function of
        ``noise`` (and ``condition``) alone: the caller draws ``noise`` from its generator and a
        seed reproduces the samples. The network runs in eval mode (no dropout) and its mode is
        restored afterwards; ``batch_size`` samples go through each forward pass.
        """
        if noise.shape[0] == 0:
            return noise.clone()
        net = self.sampling_network()
        device = next(net.parameters()).device
        scheduler = self._ddim_class(**schedule_config(self.params), timestep_spacing="trailing", set_alpha_to_one=True)
        scheduler.set_timesteps(self.params.sampling_steps)
        was_training = net.training
        net.eval()
        outputs: list[Tensor] = []
        try:
            with torch.inference_mode():
                for start in range(0, noise.shape[0], batch_size):
                    x = noise[start : start + batch_size].to(device, torch.float32)
                    cond = None
                    if condition is not None:
                        cond = condition[start : start + batch_size].to(device, torch.float32)
                    for t in scheduler.timesteps:
                        inputs = x if cond is None else torch.cat([x, cond], dim=1)
                        predicted = net(inputs, t, return_dict=False)[0]
                        x = scheduler.step(predicted, t, x, eta=0.0, return_dict=False)[0]
                    outputs.append(x.float().cpu())
        finally:
            net.train(was_training)
        return torch.cat(outputs)
