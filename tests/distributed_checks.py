"""What each of two gloo processes checks in tests/reliability/test_distributed.py.

This lives in an importable module (``tests`` is on ``sys.path``) because
``torch.multiprocessing.spawn`` pickles the worker function by name for the child processes.
Every check asserts in the worker; a failure in either process fails the spawning test.
"""

from __future__ import annotations

import copy
import csv
import os
import signal
from pathlib import Path

import pytest
import torch

from segsynth import Trainer, TrainerSettings, distributed, interrupts
from segsynth.errors import Interrupted, TrainingDiverged, UserError
from segsynth.pipeline import synthesize_files


def toy_sampler(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A pair sampler that depends only on its generator, as real samplers must."""
    masks = (torch.rand(n, 1, 8, 8, generator=g) > 0.5).float()
    return masks, torch.rand(n, 3, 8, 8, generator=g)


def worker(rank: int, world: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    distributed.init(torch.device("cpu"))
    assert distributed.is_distributed() and distributed.world_size() == world
    root = Path(folder)
    trainer = Trainer(root / "train", TrainerSettings(device="cpu", seed=5, progress=False,
                                                      checkpoint_every=100))
    assert (trainer.rank, trainer.world_size) == (rank, world)
    _shards_are_disjoint_and_complete(trainer, world)
    _per_rank_random_streams(trainer)
    _gradients_are_averaged(trainer, world)
    _gan_loop_stays_in_step(trainer)
    _losses_are_averaged_and_nan_stops_everyone(trainer, rank)
    _a_signal_on_one_rank_stops_all(trainer, rank)
    _finish_gives_everyone_rank0_weights(trainer, rank)
    _errors_on_rank0_reach_the_others(rank)
    synthesize_files(root / "split", toy_sampler, 11, 3, seed=4, progress=False)
    del trainer
    distributed.barrier()  # nobody leaves the group while another still talks to it
    distributed.shutdown()


def _shards_are_disjoint_and_complete(trainer: Trainer, world: int) -> None:
    mine = trainer.shard(torch.arange(10) * 10)
    parts = distributed.all_gather_objects(mine.tolist())
    flat = [v for part in parts for v in part]
    assert sorted(flat) == [i * 10 for i in range(10)] and len(set(flat)) == 10
    assert all(len(part) == 5 for part in parts)
    with pytest.raises(UserError, match="has 1 sample"):
        trainer.shard(torch.zeros(1))


def _per_rank_random_streams(trainer: Trainer) -> None:
    trainer.seed_everything()
    draws = distributed.all_gather_objects(torch.rand(4).tolist())
    assert draws[0] != draws[1]
    torch.manual_seed(5)  # rank 0 keeps exactly the single-process stream
    if trainer.rank == 0:
        assert draws[0] == torch.rand(4).tolist()


def _reference_step(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, world: int) -> torch.nn.Module:
    """One SGD step on the mean of the per-shard gradients, computed in this process alone."""
    ref = copy.deepcopy(net)
    grads = []
    for r in range(world):
        ref.zero_grad()
        idx = distributed.shard_indices(len(x), r, world)
        ((ref(x[idx]) - y[idx]) ** 2).mean().backward()
        grads.append([p.grad.clone() for p in ref.parameters()])
    with torch.no_grad():
        for i, p in enumerate(ref.parameters()):
            p -= 0.1 * sum(g[i] for g in grads) / world
    return ref


def _gradients_are_averaged(trainer: Trainer, world: int) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, generator=g), torch.randn(8, 1, generator=g)
    idx = trainer.shard(torch.arange(8))
    for through_ddp in (True, False):  # DDP wrapper, or the plain module averaged in step()
        torch.manual_seed(1)
        net = trainer.setup(torch.nn.Linear(3, 1))
        expected = _reference_step(net, x, y, world)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        forward = trainer.wrapped(net) if through_ddp else net
        assert (forward is not net) == through_ddp
        trainer.backward(((forward(x[idx]) - y[idx]) ** 2).mean())
        trainer.step(opt)
        for got, want in zip(net.parameters(), expected.parameters(), strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def _gan_loop_stays_in_step(trainer: Trainer) -> None:
    """D runs on real, on detached fakes, then frozen in G's loss; both nets stay identical."""
    torch.manual_seed(2)
    G, D = torch.nn.Linear(2, 4), torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                                                      torch.nn.Linear(8, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    trainer.seed_everything()  # different data and noise on each rank
    g, d = trainer.wrapped(G), trainer.wrapped(D)
    for _ in range(3):
        fake = g(torch.randn(6, 2))
        d_loss = torch.nn.functional.softplus(-d(torch.randn(6, 4))).mean() \
            + torch.nn.functional.softplus(d(fake.detach())).mean()
        trainer.backward(d_loss)
        trainer.step(opt_d)
        D.requires_grad_(False)
        trainer.backward(torch.nn.functional.softplus(-d(fake)).mean())
        trainer.step(opt_g)
        D.requires_grad_(True)
    flat = torch.cat([p.detach().flatten() for p in [*G.parameters(), *D.parameters()]])
    everyone = distributed.all_gather_objects(flat)
    assert torch.equal(everyone[0], everyone[1])


def _losses_are_averaged_and_nan_stops_everyone(trainer: Trainer, rank: int) -> None:
    logged = trainer.log(1, loss=float(rank), other=2.0)
    assert logged == {"loss": 0.5, "other": 2.0}
    with pytest.raises(TrainingDiverged, match="diverged at step 2"):
        trainer.log(2, loss=float("nan") if rank == 1 else 1.0, other=2.0)
    distributed.barrier()
    rows = list(csv.reader((trainer.work_dir / "losses.csv").open()))
    assert rows == [["step", "loss", "other"], ["1", "0.5", "2.0"]]


def _a_signal_on_one_rank_stops_all(trainer: Trainer, rank: int) -> None:
    net = torch.nn.Linear(2, 1)
    trainer.checkpoint(6, {"net": net})  # no request anywhere: nothing happens
    if rank == 1:
        interrupts.request(signal.SIGTERM)
    try:
        with pytest.raises(Interrupted) as err:
            trainer.checkpoint(7, {"net": trainer.wrapped(net)})
    finally:
        interrupts.clear()
    assert err.value.exit_code == 143 and "step 7" in str(err.value)
    saved = sorted(p.name for p in trainer.store.folder.iterdir())
    assert saved == ["step_00000007.pt", "step_00000007.pt.sha256"]
    payload = trainer.store.read(trainer.store.folder / "step_00000007.pt")
    assert set(payload["state"]["net"]) == {"weight", "bias"}  # the plain module, no "module."


def _finish_gives_everyone_rank0_weights(trainer: Trainer, rank: int) -> None:
    net = torch.nn.BatchNorm1d(3)
    net.running_mean.fill_(float(rank + 1))
    with torch.no_grad():
        net.weight.fill_(float(rank + 3))
    trainer.finish({"net": net}, 9)
    assert torch.equal(net.running_mean, torch.ones(3)) and torch.equal(net.weight, torch.full((3,), 3.0))
    assert trainer.is_finished()  # on every rank: rank 0 wrote it before the barrier
    fresh = torch.nn.BatchNorm1d(3)
    assert trainer.load_final({"net": fresh}) and torch.equal(fresh.running_mean, torch.ones(3))


def _errors_on_rank0_reach_the_others(rank: int) -> None:
    def refuse() -> int:
        raise UserError("run folder is in use")

    with pytest.raises(UserError, match="in use") as err:
        distributed.on_main(refuse)
    assert isinstance(err.value, distributed.PeerFailed) == (rank == 1)
    assert distributed.on_main(lambda: 41 + 1) == 42
