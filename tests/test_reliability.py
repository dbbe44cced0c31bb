"""Interrupted, repeated and crashing runs; secrets; unsafe files."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from groundtune import train as train_module
from groundtune.cli import main

from conftest import REPO, cli_overrides, tiny_run_overrides

RESUME_TOLERANCE = 1e-6  # max abs difference between adapter weights of a resumed and an uninterrupted run


def train_cli(model_dir: Path, out: Path, *extra: str, **overrides) -> int:
    args = cli_overrides(tiny_run_overrides(model_dir, out, **{"train.epochs": 2, **overrides}))
    return main(["train", *args, *extra])


def adapter(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "adapter" / "adapter_model.safetensors")


def send_signal_at_step(monkeypatch, signum: int, step: int) -> None:
    """Deliver a real signal to this process when training reaches `step` (before the stop check runs)."""
    original = train_module.StopOnSignal.on_step_end

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == step:
            os.kill(os.getpid(), signum)
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(train_module.StopOnSignal, "on_step_end", on_step_end)


@pytest.fixture(scope="module")
def reference_run(tiny_model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    assert train_cli(tiny_model_dir, out) == 0
    return out / "tiny"


def test_same_seed_same_adapter(reference_run, tiny_model_dir, tmp_path):
    assert train_cli(tiny_model_dir, tmp_path) == 0
    a, b = adapter(reference_run), adapter(tmp_path / "tiny")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "CPU training is bit-for-bit repeatable"


def test_different_seed_different_adapter(reference_run, tiny_model_dir, tmp_path):
    assert train_cli(tiny_model_dir, tmp_path, seed=7) == 0
    a, b = adapter(reference_run), adapter(tmp_path / "tiny")
    assert any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_interrupt_saves_checkpoint_and_resume_matches(signum, reference_run, tiny_model_dir, tmp_path, monkeypatch,
                                                       capsys):
    send_signal_at_step(monkeypatch, signum, step=3)
    code = train_cli(tiny_model_dir, tmp_path)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("groundtune:")]
    assert code == 130
    assert len(err) == 1 and re.search(rf"stopped by {signal.Signals(signum).name} at step 3/\d+; checkpoint saved; "
                                       r"rerun the same command with --resume", err[0]), err
    assert not (tmp_path / "tiny").exists() and not (tmp_path / "latest").exists()
    assert (tmp_path / "tiny.partial" / "checkpoints" / "checkpoint-3" / "adapter_model.safetensors").is_file()
    monkeypatch.undo()

    assert train_cli(tiny_model_dir, tmp_path) == 2, "a plain rerun must not silently drop the interrupted run"
    assert train_cli(tiny_model_dir, tmp_path, "--resume") == 0
    assert os.readlink(tmp_path / "latest") == "tiny" and not (tmp_path / "tiny.partial").exists()
    a, b = adapter(reference_run), adapter(tmp_path / "tiny")
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff <= RESUME_TOLERANCE, diff


def test_resume_with_a_changed_config_is_refused(tiny_model_dir, tmp_path, monkeypatch, capsys):
    send_signal_at_step(monkeypatch, signal.SIGTERM, step=1)
    assert train_cli(tiny_model_dir, tmp_path) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert train_cli(tiny_model_dir, tmp_path, "--resume", **{"train.learning_rate": 0.5}) == 2
    assert "--resume with a different config than the interrupted run (section(s) train)" in capsys.readouterr().err


def test_crash_while_saving_keeps_latest_on_the_previous_run(reference_run, tiny_model_dir, monkeypatch):
    out = reference_run.parent
    import groundtune.save

    def crash(folder, *args, **kwargs):
        (Path(folder) / "model.safetensors").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(groundtune.save, "save_run", crash)
    assert train_cli(tiny_model_dir, out, run_name="second") == 1
    assert os.readlink(out / "latest") == "tiny"
    assert not (out / "second").exists()
    assert list((out / "second.partial" / "checkpoints").glob("checkpoint-*")), "kept: it holds the trained state"
    monkeypatch.undo()
    assert train_cli(tiny_model_dir, out, "--resume", run_name="second") == 0
    assert os.readlink(out / "latest") == "second" and not (out / "second.partial").exists()
    a, b = adapter(reference_run), adapter(out / "second")
    assert all(torch.equal(a[k], b[k]) for k in a), "the finished training was recovered, not redone differently"


def test_failure_before_any_checkpoint_leaves_nothing(tiny_model_dir, tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash in the first step")

    monkeypatch.setattr(train_module.GroundtuneTrainer, "compute_loss", crash)
    assert train_cli(tiny_model_dir, tmp_path) == 1
    assert list(tmp_path.iterdir()) == []


def test_token_never_reaches_outputs_or_logs(tiny_model_dir, tmp_path, monkeypatch, capfd):
    canary = "hf_CANARY" + "x" * 24
    monkeypatch.setenv("HF_TOKEN", canary)
    assert train_cli(tiny_model_dir, tmp_path) == 0
    assert main(["ask", "--model", str(tmp_path / "latest"), "--max-new-tokens", "4", "Who?"]) == 0
    assert main(["ask", "--model", str(tmp_path / "missing"), canary]) == 2
    captured = capfd.readouterr()
    assert canary not in captured.out + captured.err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path


def test_source_never_enables_remote_code_or_pickle_loading():
    src = "\n".join(p.read_text() for p in (REPO / "src").rglob("*.py"))
    assert "trust_remote_code=True" not in src
    assert not re.search(r"\bpickle\.load|torch\.load\(", src)
    assert "weights_only=False" not in src
