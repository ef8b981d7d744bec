"""``synth doctor``: everything a bug report needs about this machine, in one screen."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

import segsynth
from segsynth.plugins import ENTRY_POINT_GROUP, KIND_LABEL, get_registry
from segsynth.trainer import cpu_has_native_bf16


def _writable(folder: Path) -> str:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
        return "writable"
    except OSError as exc:
        return f"NOT writable ({exc.strerror})"


def _precisions(device: torch.device) -> str:
    ok = ["fp32"]
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        try:
            with torch.autocast(device_type=device.type, dtype=dtype):
                torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)
            ok.append(name)
        except (RuntimeError, AssertionError):
            pass
    return ", ".join(ok)


def cpu_bf16_advice() -> str:
    """One line on the CPU fast path: what ``precision: auto`` picks on this CPU, and why."""
    if cpu_has_native_bf16():
        return ("cpu fast path: this CPU has native bf16, so trainer.precision auto runs bf16 + "
                "channels-last here (1.2-2x faster at realistic sizes); precision: fp32 turns it off")
    return ("cpu fast path: no native bf16 on this CPU; trainer.precision auto stays fp32 here, bf16 "
            "would be emulated and slower")


def report_lines() -> list[str]:
    lines = [
        f"segsynth {segsynth.__version__} (plugin API {segsynth.API_VERSION})",
        f"python {sys.version.split()[0]} on {platform.platform()}",
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"{os.cpu_count()} CPUs",
    ]
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            devices.append(torch.device(f"cuda:{i}"))
            lines.append(f"cuda:{i}: {torch.cuda.get_device_name(i)}")
    else:
        lines.append("cuda: not available")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(torch.device("mps"))
    lines.append("mps: " + ("available" if torch.device("mps") in devices else "not available"))
    for device in devices:
        lines.append(f"autocast on {device}: {_precisions(device)}")
    lines.append(cpu_bf16_advice())
    lines.append("plugins (entry points of group 'segsynth'):")
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        who = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "unknown package"
        lines.append(f"  {ep.name} = {ep.value}  ({who})")
    registry = get_registry()
    for entry in registry.all_entries():
        lines.append(f"  component {entry.name}: {KIND_LABEL[entry.kind]} from {entry.source.package}")
    for problem in registry.broken:
        lines.append(f"  BROKEN: {problem}")
    for folder in (Path.cwd(), Path.cwd() / "runs", Path(tempfile.gettempdir())):
        lines.append(f"folder {folder}: {_writable(folder)}")
    return lines
