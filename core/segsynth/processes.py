"""One training process, or one of several under torchrun: the trainer's only place that tells them apart.

The trainer's counterpart of ``steps/strategy.py`` (the shape of Lightning Fabric's
``single_device.py`` vs ``ddp.py``): ``Trainer.__init__`` picks ``Solo`` or ``Group`` once
(``choose``), and every trainer method that differs between one process and several asks it:
the wrapper for forward passes, this process's part of the data, the gradients DDP did not
average, the mean of logged numbers, the random stream, the stop signal, waiting for rank 0's
save, and rank 0's weights before the final checkpoint. ``Solo`` does each directly; ``Group``
does it with the other processes (docs/distributed.md).
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch

from segsynth import distributed
from segsynth.errors import UserError

Data = TypeVar("Data")


class Solo:
    """Training in this process alone (also a ``local`` trainer under torchrun: rank 0's evaluation)."""

    rank = 0
    world_size = 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files (always, unless it is not rank 0 under torchrun)."""
        return self.rank == 0

    def place(self, device: torch.device) -> torch.device:
        """The device this process uses: under torchrun ``cuda`` means ``cuda:LOCAL_RANK``.

        That holds for a ``local`` trainer too (it runs on rank 0's GPU), so ``Solo`` asks as well.
        """
        return distributed.place(device)

    def stream_seed(self, base: int, step: int = 0) -> int:
        """The seed of this process's random stream from ``base`` (after resuming at ``step``).

        Rank 0 at step 0 keeps ``base``, the single-process seed; every other rank gets its own
        stream (batches, noise, augmentation), so that the processes do not draw the same numbers.
        """
        if self.rank == 0 and step == 0:
            return base
        return (base * 1_000_003 + self.rank * 7919 + step * 104_729) % (2**63 - 1)

    def reseed_after_resume(self, base: int, step: int) -> None:
        """Nothing: the checkpoint holds rank 0's random state, which ``resume`` restored."""

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """What to call for a training forward pass of ``module``: itself."""
        return module

    def shard(self, data: Data, owner: str) -> Data:
        """This process's part of a training set: all of it."""
        return data

    def sync_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """Nothing: the gradients of one process are the run's gradients."""

    def mean(self, numbers: dict[str, float]) -> dict[str, float]:
        """The logged ``numbers`` as the run's: this process's own."""
        return numbers

    def agree_on_stop(self, signum: int | None) -> int | None:
        """The stop request (signal number) the run honours at this step: this process's own."""
        return signum

    def take_main_state(self, state: dict[str, Any]) -> None:
        """Nothing: this process's weights are the ones saved."""

    def wait_for_save(self) -> None:
        """Nothing: the checkpoint was written by this process."""

    def end_training(self) -> None:
        """Nothing to let go."""


class Group(Solo):
    """Training in every process torchrun started: DDP wrappers, shards, averages over processes."""

    def __init__(self) -> None:
        self.rank = distributed.rank()
        self.world_size = distributed.world_size()
        self._wrappers: dict[int, torch.nn.Module] = {}  # id(module) -> its DDP wrapper
        self._wrapper_params: dict[int, set[int]] = {}  # id(wrapper) -> ids of its parameters
        self._synced: set[int] = set()  # wrappers run with gradient sync since their last step

    def reseed_after_resume(self, base: int, step: int) -> None:
        """The checkpoint holds rank 0's random state; the other ranks start a stream of their own."""
        if self.rank > 0:
            torch.manual_seed(self.stream_seed(base, step))

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``module``'s ``DistributedDataParallel`` wrapper, made on the first call.

        Making it is a collective: every process must call it for the same modules in the same
        order, as the same loop does. A forward pre-hook notes which wrappers ran with gradient
        sync, so that ``sync_gradients`` averages only what DDP did not.
        """
        wrapper = self._wrappers.get(id(module))
        if wrapper is None:
            wrapper = distributed.data_parallel(module, device)
            wrapper.register_forward_pre_hook(self._note_synced_forward)
            self._wrappers[id(module)] = wrapper
            self._wrapper_params[id(wrapper)] = {id(p) for p in module.parameters()}
        return wrapper

    def _note_synced_forward(self, wrapper: torch.nn.Module, args: Any) -> None:
        if torch.is_grad_enabled() and getattr(wrapper, "require_backward_grad_sync", True):
            self._synced.add(id(wrapper))

    def shard(self, data: Data, owner: str) -> Data:
        """Samples ``rank, rank + world_size, ...``: disjoint per process, together all of them.

        ``data`` is a tensor or has ``subset(index)`` (a ``PairSet``); ``owner`` names the
        training task in the message when there are fewer samples than processes.
        """
        n = len(data)  # type: ignore[arg-type]
        if n < self.world_size:
            raise UserError(
                f"the training set of {owner} has {n} sample(s) but the run has "
                f"{self.world_size} processes, and every process needs at least one; start "
                f"fewer processes (torchrun --nproc-per-node) or train on more data."
            )
        index = distributed.shard_indices(n, self.rank, self.world_size)
        if isinstance(data, torch.Tensor):
            return data[index.to(data.device)]  # type: ignore[return-value]
        subset = getattr(data, "subset", None)
        if subset is None:
            raise TypeError(f"cannot shard a {type(data).__name__}; pass a tensor or a PairSet")
        return subset(index)  # type: ignore[no-any-return]

    def sync_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """Average over the processes the gradients of ``optimizer`` that no DDP wrapper averaged.

        Modules a plugin calls directly (not through ``wrap``) get their gradients averaged here,
        so every process applies the same update whatever the plugin does.
        """
        owned = [p for group in optimizer.param_groups for p in group["params"]]
        owned_ids = {id(p) for p in owned}
        synced: set[int] = set()
        for key in self._synced:
            synced |= self._wrapper_params[key]
        distributed.average_gradients(p for p in owned if id(p) not in synced)
        self._synced = {k for k in self._synced if not self._wrapper_params[k] & owned_ids}

    def mean(self, numbers: dict[str, float]) -> dict[str, float]:
        """The mean over the processes; a NaN on one makes it NaN on all, so all of them stop."""
        return distributed.mean_values(numbers)

    def agree_on_stop(self, signum: int | None) -> int | None:
        """A signal seen by any process stops all of them at this step."""
        return distributed.agree_on_stop(signum)

    def take_main_state(self, state: dict[str, Any]) -> None:
        """Overwrite ``state``'s weights, buffers and counters with rank 0's.

        Batch-norm statistics are gathered per process during training; after this every
        process samples exactly what rank 0 saves.
        """
        distributed.broadcast_tensors(_state_tensors(state))

    def wait_for_save(self) -> None:
        """Nobody goes on (or exits, and gets the run torn down) before rank 0's save."""
        distributed.barrier()

    def end_training(self) -> None:
        """Training is over: let the DDP wrappers go."""
        self._wrappers.clear()
        self._wrapper_params.clear()
        self._synced.clear()


def choose(local: bool) -> Solo:
    """``Group`` under torchrun, ``Solo`` otherwise or for a ``local`` trainer."""
    return Solo() if local or not distributed.is_distributed() else Group()


def _state_tensors(state: dict[str, Any]) -> list[torch.Tensor]:
    """The tensors of ``state``'s modules (parameters and buffers) and its counter tensors."""
    tensors: list[torch.Tensor] = []
    for value in state.values():
        if isinstance(value, torch.nn.Module):
            tensors += [t for t in value.state_dict().values() if isinstance(t, torch.Tensor)]
        elif isinstance(value, torch.Tensor):
            tensors.append(value)
    return tensors
