"""Training under `accelerate launch`: two CPU processes (gloo) against one process with the same global batch.

Both runs see the same examples in each optimizer step: the Trainer's sampler draws one shuffled order
from the seed, and under DDP accelerate deals its consecutive per-device batches out to the processes
(step k: process 0 gets examples 8k..8k+3, process 1 gets 8k+4..8k+7). Length grouping (which groups by
per-device batch size) and LoRA dropout (a random mask per process) are off so the two runs are the
same computation; 0.5 epochs of the default dataset in full steps of 8 (gradient accumulation 1, set by
tiny_run_overrides), so no ragged last batch.
"""

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from groundtune.cli import main

from conftest import REPO, cli_overrides, tiny_run_overrides
from test_train import RUN_FILES

ACCELERATE = REPO / "configs" / "accelerate"
# Same examples per step, float32 on CPU: the two runs differ only in the order of floating-point sums
# (measured: 2e-8 to 3e-8). The LoRA B weights start at zero and reach ~2e-3 here; training on half of
# each batch instead (one process, batch 4, 4 steps) ends ~3e-3 away, so a process left out of the
# gradient average could not pass.
ADAPTER_ATOL = 1e-5


@contextmanager
def one_thread():
    """One torch thread, like each launched process (torchrun sets OMP_NUM_THREADS=1); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def comparable(model_dir: Path, out: Path, batch_size: int) -> dict:
    return tiny_run_overrides(model_dir, out, **{"train.epochs": 0.5, "train.batch_size": batch_size,
                                                 "train.group_by_length": False, "lora.dropout": 0.0})


def launch_two_cpu_processes(args: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """`accelerate launch` (its module, so no PATH lookup) with the shipped DDP config, 2 processes of this checkout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE / "ddp.yaml"), "--num_processes", "2",
           "--main_process_port", "0", "-m", "groundtune.cli", "train", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    return proc, time.perf_counter() - t0


def adapter(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "adapter" / "adapter_model.safetensors")


def losses(run: Path) -> list[float]:
    return [e["loss"] for e in json.loads((run / "log_history.json").read_text()) if "loss" in e]


@pytest.fixture(scope="module")
def two_runs(tiny_model_dir, tmp_path_factory):
    single, double = tmp_path_factory.mktemp("one-process"), tmp_path_factory.mktemp("two-processes")
    with one_thread():
        assert main(["train", *cli_overrides(comparable(tiny_model_dir, single, batch_size=8))]) == 0
    proc, seconds = launch_two_cpu_processes(cli_overrides(comparable(tiny_model_dir, double, batch_size=4)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"two-process run: {seconds:.1f} s wall")
    return single, double, proc.stdout


def test_two_processes_write_one_run_folder(two_runs):
    _, double, _ = two_runs
    assert {p.name for p in double.iterdir()} == {"tiny", "latest"}
    assert os.readlink(double / "latest") == "tiny"
    assert {p.name for p in (double / "tiny").iterdir()} == RUN_FILES


def test_both_processes_took_part_and_the_global_batch_is_recorded(two_runs):
    single, double, stdout = two_runs
    two, one = (json.loads((d / "tiny" / "manifest.json").read_text()) for d in (double, single))
    assert (two["world_size"], two["global_batch_size"]) == (2, 8)
    assert (one["world_size"], one["global_batch_size"]) == (1, 8)
    lines = [line for line in stdout.splitlines() if line.startswith("[groundtune]")]
    assert sum(line.startswith("[groundtune] data:") for line in lines) == 1, "only the main process logs"
    training = [line for line in lines if line.startswith("[groundtune] training")]
    assert len(training) == 1 and "global batch 8 (4 per device x 2 x 1 accumulation)" in training[0]
    # the logged loss is the mean over both processes' halves of each batch: equal to the one-process loss
    assert losses(double / "tiny") == pytest.approx(losses(single / "tiny"), rel=1e-5)


def test_two_process_adapter_matches_one_process_with_the_same_global_batch(two_runs):
    single, double, _ = two_runs
    a, b = adapter(single / "tiny"), adapter(double / "tiny")
    assert a.keys() == b.keys()
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    print(f"adapter max abs diff, 2 processes x 4 vs 1 process x 8: {diff:.2e}")
    assert diff <= ADAPTER_ATOL
    moved = max(v.abs().max().item() for k, v in b.items() if "lora_B" in k)
    assert moved > 50 * ADAPTER_ATOL, "training moved the adapter well beyond the tolerance"


def test_unsharded_copy_carries_the_trained_adapter(tiny_model_dir, tmp_path):
    """The path FSDP and DeepSpeed take before saving, exercised here on one process (the gather is a no-op)."""
    from groundtune.config import load_config
    from groundtune.data import prepare_data
    from groundtune.model import load_model, load_tokenizer
    from groundtune.train import GroundtuneTrainer, PrefixSharingCollator, lora_model, training_arguments, unsharded_copy

    cfg = load_config(None, comparable(tiny_model_dir, tmp_path, batch_size=8) | {"train.epochs": 0.2})
    tokenizer = load_tokenizer(str(tiny_model_dir))
    tokenized = prepare_data(cfg.data, tokenizer).tokenized
    peft_model = lora_model(load_model(str(tiny_model_dir), cfg.model, "cpu"), cfg)
    args = training_arguments(cfg, tmp_path / "checkpoints", "cpu", torch.float32)
    args.save_strategy = "no"
    trainer = GroundtuneTrainer(model=peft_model, args=args, train_dataset=tokenized,
                                data_collator=PrefixSharingCollator(tokenizer.pad_token_id))
    with one_thread():
        trainer.train()
    copy = unsharded_copy(trainer, str(tiny_model_dir), cfg, torch.float32)
    assert copy is not peft_model
    trained, copied = peft_model.state_dict(), copy.state_dict()
    assert trained.keys() == copied.keys()
    assert all(torch.equal(trained[k], copied[k]) for k in trained)
    assert any(k for k in trained if "lora_B" in k and trained[k].abs().max() > 0)


@pytest.mark.parametrize("name, kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed_zero2", "DEEPSPEED"),
                                        ("deepspeed_zero3", "DEEPSPEED")])
def test_accelerate_configs_parse_with_the_expected_engine(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    path = ACCELERATE / f"{name}.yaml"
    cfg = load_config_from_file(str(path))  # accelerate's own loader: unknown keys are an error there
    assert cfg.distributed_type == kind
    assert cfg.num_processes == -1, "the process count always comes from --num_processes"
    assert cfg.mixed_precision == "no", "groundtune sets bf16 itself from model.dtype"
    assert "accelerate launch --config_file configs/accelerate/" + path.name in path.read_text()
    raw = yaml.safe_load(path.read_text())
    if kind == "DEEPSPEED":
        assert raw["deepspeed_config"]["zero_stage"] == int(name[-1])
        assert "gradient_accumulation_steps" not in raw["deepspeed_config"], "would fight train.grad_accum"
    if name == "deepspeed_zero3":
        assert raw["deepspeed_config"]["zero3_save_16bit_model"] is True, "unsharded_copy gathers 16-bit weights"
    if kind == "FSDP":
        assert raw["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"


def test_every_accelerate_config_is_tested():
    assert {p.stem for p in ACCELERATE.glob("*.yaml")} == {"ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"}
