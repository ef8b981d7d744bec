"""Host-memory reuse: freed blocks are reused without page faults; the trainer applies it on CPU."""

from __future__ import annotations

import platform
import resource
import sys

import pytest
import torch

from segsynth import Trainer, TrainerSettings, host_memory

GLIBC_LINUX = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
BLOCK = 2**24  # float32 elements: 64 MiB, far above glibc's mmap threshold


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def test_freed_blocks_are_reused_without_page_faults():
    applied = host_memory.retain_freed_memory()
    assert applied is GLIBC_LINUX
    if not applied:  # other C libraries are left alone; nothing more to check there
        return
    for _ in range(16):  # the heap grows until freed blocks line up with new requests
        torch.ones(BLOCK)
    before = _minor_faults()
    for _ in range(5):
        torch.ones(BLOCK)  # each one filled, then freed, like a step's activations
    pages_per_block = BLOCK * 4 // 4096
    # plain glibc maps and unmaps each block: 5 * 16384 faults; reused memory: next to none
    assert _minor_faults() - before < pages_per_block // 4


@pytest.mark.parametrize("retain", [True, False])
def test_trainer_setup_applies_it_on_cpu_only_when_asked(tmp_path, monkeypatch, retain):
    calls: list[int] = []
    monkeypatch.setattr(host_memory, "retain_freed_memory", lambda: calls.append(1) or True)
    trainer = Trainer(tmp_path, TrainerSettings(device="cpu", progress=False, retain_host_memory=retain))
    trainer.setup(torch.nn.Linear(2, 2))
    assert calls == ([1] if retain else [])
