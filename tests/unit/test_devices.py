"""``device: auto`` picks a CUDA GPU, then Apple's GPU, then the CPU; a device asked for
by name must be there, and a misspelt one is a project-file error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from server.engine.errors import ModelUnavailableError, ProjectConfigError
from server.engine.project.config import load_project
from server.engine.vision.embedders.torch_common import pick_device


def machine(monkeypatch: pytest.MonkeyPatch, cuda: int, mps: bool) -> None:
    """Pretend this machine has ``cuda`` CUDA GPUs and Apple's GPU or not."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    ("cuda", "mps", "picked"), [(1, True, "cuda"), (0, True, "mps"), (0, False, "cpu")]
)
def test_auto_prefers_cuda_then_apples_gpu_then_the_cpu(
    monkeypatch: pytest.MonkeyPatch, cuda: int, mps: bool, picked: str
) -> None:
    machine(monkeypatch, cuda, mps)
    assert pick_device("auto") == picked


def test_a_device_asked_for_must_be_there(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, 2, False)
    assert pick_device("cpu") == "cpu"
    assert pick_device("cuda:1") == "cuda:1"
    with pytest.raises(ModelUnavailableError, match=r"has 2 CUDA GPU\(s\) \(cuda:0 to cuda:1\)"):
        pick_device("cuda:2")
    with pytest.raises(ModelUnavailableError, match="Apple's GPU"):
        pick_device("mps")
    machine(monkeypatch, 0, True)
    assert pick_device("mps") == "mps"
    with pytest.raises(ModelUnavailableError, match="no CUDA GPU"):
        pick_device("cuda")


def test_this_machine_runs_on_its_cpu() -> None:
    """The real check, unpatched: this box has neither GPU."""
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("a GPU is here: the patched tests above cover the choice")
    assert pick_device("auto") == "cpu"


@pytest.mark.parametrize("field", ["model", "detector"])
def test_a_misspelt_device_is_a_project_file_error(tmp_path: Path, field: str) -> None:
    refs = tmp_path / "refs"
    refs.mkdir()
    file = tmp_path / "p.yaml"
    file.write_text(f"references:\n  - path: {refs}\n{field}:\n  device: gpu\n")
    with pytest.raises(ProjectConfigError, match=rf"{field}.device must be auto, cpu, cuda"):
        load_project(file)
