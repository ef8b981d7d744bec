"""Several processes, one run: what ``torchrun`` needs from segsynth, and nothing when it is absent.

``torchrun --nproc-per-node N --no-python synth run RECIPE`` starts N copies of ``synth`` with
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` set. ``init`` turns those into one process group
(NCCL between GPUs, gloo on CPU, each process on ``cuda:LOCAL_RANK``); every other function here
is a no-op returning the single-process answer while no group exists, so a plain ``synth run``
neither pays for nor behaves differently because of this module.

Small control messages (errors, stop requests, logged losses, manifest rows) travel over a gloo
group on the CPU even when training uses NCCL, so they never force a GPU synchronisation.
"""

from __future__ import annotations

import atexit
import inspect
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import torch

from segsynth.errors import UserError

T = TypeVar("T")

_control: Any = None  # the gloo group for CPU-side messages; the default group on CPU runs


def launched() -> bool:
    """True when this process was started by torchrun (or similar) as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _dist() -> Any:
    import torch.distributed as dist

    return dist


def is_distributed() -> bool:
    """True once ``init`` has joined a process group of more than one process."""
    if not torch.distributed.is_available():
        return False
    dist = _dist()
    return bool(dist.is_initialized() and dist.get_world_size() > 1)


def world_size() -> int:
    return int(_dist().get_world_size()) if is_distributed() else 1


def rank() -> int:
    return int(_dist().get_rank()) if is_distributed() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def is_main() -> bool:
    """Rank 0: the one process that writes run files, checkpoints, logs and reports."""
    return rank() == 0


def label() -> str:
    """`` (rank R)`` on processes other than rank 0, for messages; empty otherwise."""
    return f" (rank {rank()})" if rank() else ""


def init(device: torch.device) -> None:
    """Join the process group torchrun describes, once; do nothing in a single process.

    The backend follows the device: NCCL for CUDA (each process on ``cuda:LOCAL_RANK``), gloo
    on CPU. The group is left at interpreter exit.
    """
    global _control
    if not launched() or (torch.distributed.is_available() and _dist().is_initialized()):
        return
    if not torch.distributed.is_available():
        raise UserError(
            f"this process was started as one of {os.environ['WORLD_SIZE']} (WORLD_SIZE is set, "
            "e.g. by torchrun) but this PyTorch build has no torch.distributed; run `synth run` "
            "without torchrun."
        )
    if device.type not in ("cpu", "cuda"):
        raise UserError(
            f"device {device.type!r} cannot be used by several processes under torchrun; use "
            "--device cuda (one GPU per process) or --device cpu, or run without torchrun."
        )
    dist = _dist()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise UserError(
                f"torchrun started local rank {local} but this machine has only "
                f"{torch.cuda.device_count()} CUDA GPU(s); use --nproc-per-node "
                f"{torch.cuda.device_count()} or fewer."
            )
        torch.cuda.set_device(local)
    dist.init_process_group(backend)
    _control = dist.new_group(backend="gloo") if backend != "gloo" else dist.group.WORLD
    atexit.register(shutdown)


def shutdown() -> None:
    """Leave the process group (registered at exit by ``init``; safe to call twice)."""
    global _control
    if torch.distributed.is_available() and _dist().is_initialized():
        _dist().destroy_process_group()
    _control = None


def place(device: torch.device) -> torch.device:
    """The device this process should use: ``cuda`` means ``cuda:LOCAL_RANK`` under torchrun."""
    if device.type == "cuda" and is_distributed():
        return torch.device("cuda", local_rank())
    return device


def shard_indices(n: int, rank: int, world: int) -> torch.Tensor:
    """Positions ``rank, rank + world, ...`` of ``n`` samples: disjoint per rank, together all of them."""
    return torch.arange(rank, n, world)


# ---------------------------------------------------------------------- collectives
def _group_for(tensor: torch.Tensor) -> Any:
    """CUDA tensors travel over the default (NCCL) group, CPU tensors over the gloo group."""
    return None if tensor.is_cuda else _control


def barrier() -> None:
    if is_distributed():
        _dist().barrier(group=_control)


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every process (a small picklable value)."""
    if not is_distributed():
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=0, group=_control)
    return box[0]  # type: ignore[no-any-return]


def gather_objects(obj: T) -> list[T] | None:
    """Every process's ``obj``, in rank order, on rank 0; ``None`` on the others."""
    if not is_distributed():
        return [obj]
    out: list[Any] | None = [None] * world_size() if is_main() else None
    _dist().gather_object(obj, out, dst=0, group=_control)
    return out


def all_gather_objects(obj: T) -> list[T]:
    """Every process's ``obj``, in rank order, on every process."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    _dist().all_gather_object(out, obj, group=_control)
    return out


def mean_values(values: dict[str, float]) -> dict[str, float]:
    """The mean of each value over all processes (a NaN anywhere makes it NaN everywhere)."""
    if not is_distributed() or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64)
    _dist().all_reduce(t, group=_control)
    t /= world_size()
    return dict(zip(values, t.tolist(), strict=True))


def agree_on_stop(signum: int | None) -> int | None:
    """A stop request (signal number) seen by any process, so that all stop at the same step."""
    if not is_distributed():
        return signum
    t = torch.tensor([signum or 0], dtype=torch.int64)
    _dist().all_reduce(t, op=_dist().ReduceOp.MAX, group=_control)
    return int(t.item()) or None


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """Replace each parameter's gradient by its mean over all processes, in few messages."""
    if not is_distributed():
        return
    buckets: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for p in params:
        if p.grad is not None:
            buckets.setdefault((p.grad.device, p.grad.dtype), []).append(p.grad)
    for grads in buckets.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        _dist().all_reduce(flat, group=_group_for(flat))
        flat /= world_size()
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()


def broadcast_tensors(tensors: Sequence[torch.Tensor]) -> None:
    """Overwrite ``tensors`` in place with rank 0's values."""
    if not is_distributed():
        return
    for t in tensors:
        if t.is_contiguous():
            _dist().broadcast(t, src=0, group=_group_for(t))
        else:
            tmp = t.contiguous()
            _dist().broadcast(tmp, src=0, group=_group_for(tmp))
            t.copy_(tmp)


def data_parallel(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Wrap ``module`` in ``DistributedDataParallel`` for GAN-style loops.

    Buffers are synchronised once, when the wrapper is made, not at every forward: a
    discriminator runs several forwards per backward, and re-broadcasting batch-norm statistics
    or spectral-norm vectors between them would overwrite tensors autograd still needs (and
    cost a message each time). ``Trainer.finish`` copies rank 0's whole state to every process
    before the final checkpoint, so sampling sees one model everywhere.
    """
    from torch.nn.parallel import DistributedDataParallel

    options: dict[str, Any] = {"find_unused_parameters": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        options["forward_sync_buffers"] = False
    else:  # torch < 2.14
        options["broadcast_buffers"] = False
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, **options)


# ---------------------------------------------------------------------- rank 0 acts, all hear
class PeerFailed(UserError):
    """Another process (rank 0) failed; this one stops too, with the same exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def on_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and hand its result (or its failure) to every process.

    Without this, a ``UserError`` on rank 0 (folder in use, disk full) would leave the other
    processes waiting for it at their next collective until torchrun kills them.
    """
    if not is_distributed():
        return fn()
    if is_main():
        try:
            result = fn()
        except UserError as exc:
            broadcast_object(("error", str(exc), exc.exit_code))
            raise
        except BaseException as exc:
            broadcast_object(("error", f"{type(exc).__name__}: {exc}", 1))
            raise
        broadcast_object(("ok", result, 0))
        return result
    status, value, code = broadcast_object(None)  # type: ignore[misc]
    if status == "error":
        raise PeerFailed(f"stopped because rank 0 failed: {value}", code)
    return value  # type: ignore[no-any-return]
