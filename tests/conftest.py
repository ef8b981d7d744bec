"""Shared fixtures: register the toy components, write recipes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.register_assert_rewrite("gan_checks")  # shared checks get pytest's detailed assert messages

from segsynth.testing import segsynth_plugin  # noqa: E402, F401  (re-exported fixture)
from toys import TOY_RECIPE, ToyPlugin  # noqa: E402

os.environ.setdefault("TQDM_DISABLE", "1")  # tqdm reads this: no bars in test logs

# Under pytest-xdist (`-n auto`, pyproject's addopts) each core runs its own worker: a worker, and
# every `synth` / bench subprocess it starts, then gets one intra-op thread, because two workers
# with a thread per core each would fight over the cores (OpenMP threads that wait for a
# descheduled partner spin, and a test runs several times slower than alone).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def toy_plugin(segsynth_plugin):  # type: ignore[no-untyped-def]  # noqa: F811
    """Register the toy components for one test."""
    segsynth_plugin(ToyPlugin(), name="toy", package="toy-package")
    return ToyPlugin


@pytest.fixture
def write_recipe(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a recipe dict (default: the toy recipe) to a YAML file and return its path."""

    def write(data: dict[str, Any] | None = None, name: str = "recipe.yaml", text: str | None = None) -> Path:
        path = tmp_path / name
        path.write_text(text if text is not None else yaml.safe_dump(data or TOY_RECIPE, sort_keys=False))
        return path

    return write


@pytest.fixture(autouse=True, scope="module")
def one_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    """The plugin tests (tests/plugins) run on one intra-op thread.

    Their tensors are tiny: a second intra-op thread only adds barrier waits, and on a shared
    2-core machine a descheduled OpenMP worker makes each op wait for its time slice (a 3 s test
    measured 125 s that way). Restored afterwards for whatever runs next in the session."""
    if request.path.parent.name != "plugins":
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
