"""Checkpoints: exact resume, atomic files, checksums, corrupt fallback, no code execution."""

from __future__ import annotations

import pickle

import pytest
import torch

from segsynth import Trainer, TrainerSettings
from segsynth.checkpoint import CheckpointStore
from segsynth.errors import TrainingDiverged, UserError


def _train(tmp_path, total, resume=False, nan_at=None):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    trainer = Trainer(tmp_path, TrainerSettings(device="cpu", progress=False, checkpoint_every=5),
                      resume=resume)
    state = {"net": net, "opt": opt}
    start = trainer.resume(state)
    for step in trainer.steps(start, total, "t"):
        x = torch.randn(16, 3)  # drawn from the (restored) global RNG
        loss = (net(x) - x.sum(1, keepdim=True)).pow(2).mean()
        if nan_at == step:
            loss = loss * float("nan")
        trainer.backward(loss)
        trainer.step(opt)
        trainer.log(step, loss=loss)
        trainer.checkpoint(step, state)
    trainer.finish(state, total)
    return net, start


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path):
    straight, _ = _train(tmp_path / "a", 20)
    _train(tmp_path / "b", 12)  # "killed" after step 12; newest checkpoint is step 10
    resumed, start = _train(tmp_path / "b", 20, resume=True)
    assert start == 10
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)
    rows = (tmp_path / "b" / "losses.csv").read_text().strip().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(1, 21))  # no duplicated steps


def test_only_newest_checkpoints_are_kept(tmp_path):
    _train(tmp_path, 20)
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt"))
    assert names == ["final.pt", "step_00000015.pt", "step_00000020.pt"]


def test_corrupt_newest_checkpoint_falls_back_to_previous(tmp_path):
    _train(tmp_path, 12)
    newest = tmp_path / "checkpoints" / "step_00000010.pt"
    newest.write_bytes(newest.read_bytes()[:100])  # cut short, as by a crash mid-write
    with pytest.warns(UserWarning, match="does not match its checksum"):
        _, start = _train(tmp_path, 20, resume=True)
    assert start == 5


def test_pickle_carrying_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (exec, ("open('pwned', 'w').write('x')",))

    path = tmp_path / "checkpoints" / "step_00000001.pt"
    path.parent.mkdir()
    torch.save({"format": 1, "step": 1, "state": {}, "rng": {}, "evil": Evil()}, path,
               pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(UserError, match="cannot be loaded safely"):
        CheckpointStore(path.parent).read(path)
    assert not (tmp_path / "pwned").exists()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged) as err:
        _train(tmp_path, 20, nan_at=8)
    assert "step 8" in str(err.value) and "step_00000005.pt" in str(err.value)
    assert (tmp_path / "checkpoints" / "step_00000005.pt").exists()
    assert not (tmp_path / "checkpoints" / "final.pt").exists()


def test_no_temporary_files_left_behind(tmp_path):
    _train(tmp_path, 10)
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if ".tmp" in p.name]


def test_losses_go_to_the_trainers_loggers(tmp_path):
    """The recipe's loggers (segsynth_register_loggers) get every logged row, by task."""
    written = []

    class Recording:
        def log_scalars(self, task, step, values):  # type: ignore[no-untyped-def]
            written.append((task, step, values))

        def log_image(self, task, step, tag, image):  # type: ignore[no-untyped-def]
            written.append((task, step, tag, tuple(image.shape)))

    trainer = Trainer(tmp_path, TrainerSettings(device="cpu", progress=False), loggers=[Recording()],
                      task="stage1")
    trainer.log(3, loss=0.5, d_loss=torch.tensor(1.5))
    trainer.child("seg_0").log_image(4, "masks", torch.zeros(1, 8, 8))
    assert written == [("stage1", 3, {"loss": 0.5, "d_loss": 1.5}), ("stage1/seg_0", 4, "masks", (1, 8, 8))]


def test_without_loggers_only_the_csv_is_written(tmp_path):
    trainer = Trainer(tmp_path, TrainerSettings(device="cpu", progress=False))
    trainer.log(1, loss=0.25)
    assert (tmp_path / "losses.csv").read_text().splitlines() == ["step,loss", "1,0.25"]
    assert not (tmp_path / "tensorboard").exists()
