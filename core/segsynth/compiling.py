"""Optional ``torch.compile`` of the networks a plugin hands to ``Trainer.setup``.

Why it is done this way:

* **In place, training passes only.** A plugin keeps calling its own module (plugins ignore
  what ``setup`` returns, and DDP wraps the plain module), so the module's ``forward`` is
  replaced by a small dispatcher: training-mode calls with gradients enabled go through the
  compiled forward, everything else (sampling in eval mode, ``no_grad`` batch-norm
  recalibration, EMA copies) runs eagerly. Inference never pays a recompile for eval mode or
  an odd last batch. So does a pass whose input needs a gradient without coming from a
  network: a gradient penalty (R1, WGAN-GP), whose double backward AOTAutograd cannot run.
* **Checkpoints do not change.** ``torch.compile(module)`` would wrap the module and prefix every
  state-dict key with ``_orig_mod.``; patching ``forward`` leaves parameters, buffers and keys
  untouched, so a compiled run resumes uncompiled and the other way round.
* **Never a reason to stop training.** Inductor needs a working C++ compiler on the CPU (and
  Triton on a GPU). A small forward + backward probe runs once per process before the first
  module is compiled, and a compiled forward that fails on its first use falls back too: either
  way training goes on eagerly after one warning that says why.

``auto`` means on for CUDA and off elsewhere; docs/benchmarks.md has the CPU measurements the
CPU default rests on.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from segsynth.errors import UserError

COMPILE_CHOICES = ("auto", "on", "off")
_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}

_probe_results: dict[str, str] = {}  # device type -> "" when compile works there, else why not
_warned: set[str] = set()


class CompileFallbackWarning(UserWarning):
    """``torch.compile`` was asked for but cannot run here; training continues eagerly."""


def resolve_compile(choice: bool | str, device: torch.device) -> bool:
    """Whether to compile: ``on``/``off`` as given; ``auto`` is on for CUDA only.

    On the 2-core CPUs this project is measured on, Inductor's fused normalisation and
    activations did not pay for themselves (docs/benchmarks.md), and a first compile costs
    tens of seconds per network, which the short CPU runs (and the test suite) would feel.
    """
    if isinstance(choice, bool):
        return choice
    value = str(choice).strip().lower()
    if value == "auto":
        return device.type == "cuda"
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UserError(
        f"trainer.compile {choice!r} is not one of {', '.join(COMPILE_CHOICES)}; "
        "use auto (compile on CUDA only), on or off."
    )


def compile_for_training(module: nn.Module, device: torch.device | None = None) -> nn.Module:
    """Route ``module``'s training forward passes through ``torch.compile``; return ``module``.

    Idempotent (a module set up twice is compiled once). Modules without trainable parameters
    (augmentation, fixed filters) are left alone: they have little to fuse and their random,
    data-dependent control flow would only cost recompiles. ``device`` (default: where the
    module's first parameter lives) is where the one-off probe runs.
    """
    if isinstance(module.__dict__.get("forward"), _TrainingForward):
        return module
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return module
    reason = _probe(device or params[0].device)
    if reason:
        _warn_once(f"torch.compile is not usable here ({reason}); training runs eagerly.")
        return module
    module.forward = _TrainingForward(module)  # type: ignore[method-assign]
    return module


def is_compiled(module: nn.Module) -> bool:
    """Whether ``module``'s training forward passes go through ``torch.compile``."""
    forward = module.__dict__.get("forward")
    return isinstance(forward, _TrainingForward) and not forward.failed


def uncompiled(module: nn.Module) -> nn.Module:
    """Undo ``compile_for_training``: ``module`` runs its class's forward again."""
    if isinstance(module.__dict__.get("forward"), _TrainingForward):
        del module.forward
    return module


class _TrainingForward:
    """The instance-level ``forward`` of a compiled module: compiled when training, else eager.

    It holds the module's own (eager) bound forward and a lazily compiled copy of it. A deep
    copy of the module (an EMA ``AveragedModel`` made after ``setup``) gets a dispatcher of its
    own instead of one that would run the original module's weights.
    """

    def __init__(self, module: nn.Module) -> None:
        self.eager: Callable[..., Any] = type(module).forward.__get__(module)
        self.compiled: Callable[..., Any] = torch.compile(self.eager)
        self.module_name = type(module).__name__
        self.failed = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module = self.eager.__self__  # type: ignore[attr-defined]
        if (self.failed or not module.training or not torch.is_grad_enabled()
                or torch.is_inference_mode_enabled() or torch.compiler.is_compiling()
                or _differentiates_data(args, kwargs)):
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compiler failure means: go on eagerly
            self.failed = True
            result = self.eager(*args, **kwargs)  # a genuine bug in forward raises here instead
            _warn_once(
                f"torch.compile failed for {self.module_name} ({type(exc).__name__}: "
                f"{_first_line(exc)}); it trains eagerly from here on. Set trainer.compile: off "
                "to skip the attempt."
            )
            return result

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        original = self.eager.__self__  # type: ignore[attr-defined]
        twin = memo.get(id(original))
        if twin is None:  # the dispatcher copied on its own: keep pointing at the original
            return self
        return _TrainingForward(twin)

    def __reduce__(self) -> Any:
        raise TypeError("a compiled forward cannot be pickled; save the module's state_dict()")


def _differentiates_data(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether an input depends on a tensor that requires grad but is no parameter.

    That is how a gradient penalty (R1, WGAN-GP) looks: it differentiates the network's output
    with respect to its input, made with ``x.detach().requires_grad_()``, with ``create_graph``,
    and then back-propagates through that gradient. AOTAutograd cannot run such a double
    backward, so these passes run eagerly. Inputs made by another network's forward (a
    generator's fakes) lead back to parameters only and stay compiled.
    """
    pending = [t.grad_fn if t.grad_fn is not None else t for t in (*args, *kwargs.values())
               if isinstance(t, torch.Tensor) and t.requires_grad]
    seen: set[int] = set()
    while pending:
        node = pending.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, torch.Tensor):  # a leaf handed in directly
            if not isinstance(node, nn.Parameter):
                return True
            continue
        leaf = getattr(node, "variable", None)  # AccumulateGrad: the leaf it accumulates into
        if leaf is not None:
            if not isinstance(leaf, nn.Parameter):
                return True
            continue
        pending.extend(next_fn for next_fn, _ in node.next_functions)
    return False


def _probe(device: torch.device) -> str:
    """Compile and run a tiny forward + backward on ``device`` once per process and device type.

    ``""`` when that works, else the reason (no C++ compiler for the CPU, no Triton for a GPU).
    """
    if device.type not in _probe_results:
        try:
            x = torch.ones(8, device=device, requires_grad=True)
            torch.compile(_probe_function)(x).backward()
            ok = x.grad is not None and bool(torch.isfinite(x.grad).all())
            _probe_results[device.type] = "" if ok else "the probe produced no gradient"
        except Exception as exc:  # noqa: BLE001 - missing compiler, broken toolchain, ...
            _probe_results[device.type] = f"{type(exc).__name__}: {_first_line(exc)}"
    return _probe_results[device.type]


def _probe_function(x: torch.Tensor) -> torch.Tensor:
    return (torch.relu(x * 2.0 - 1.0) + x.sin()).sum()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no message"


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, CompileFallbackWarning, stacklevel=3)


__all__ = [
    "COMPILE_CHOICES",
    "CompileFallbackWarning",
    "compile_for_training",
    "is_compiled",
    "resolve_compile",
    "uncompiled",
]
