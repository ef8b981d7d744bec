"""PNG writing and reading of pairs, including two-channel masks."""

from __future__ import annotations

import torch

from segsynth.imageio import read_png, write_png


def test_roundtrip_one_two_three_channels(tmp_path):
    g = torch.Generator().manual_seed(0)
    for channels in (1, 2, 3):
        tensor = (torch.rand(channels, 9, 7, generator=g) * 255).round() / 255
        write_png(tmp_path / f"{channels}.png", tensor)
        back = read_png(tmp_path / f"{channels}.png", channels)
        assert back.shape == (channels, 9, 7)
        assert torch.allclose(back, tensor, atol=1e-6)
