"""Fixtures: a tiny random Llama with a real (small) BPE tokenizer and a ChatML template, built here.

Fast tests never touch the network or the embedded 135M model; tests marked `slow` do use the latter.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

# Tiny models run fastest on one thread, and a loaded 2-core machine makes two threads crawl.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "data" / "000_629302d99c87d0b4.txt"


def load_script(name: str):
    """A module of scripts/ (not a package), loaded from its file: scripts/<name>.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a tiny test model.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer():
    """A byte-level BPE tokenizer (any text encodes) trained on the seed file, with ChatML special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([SEED.read_text(encoding="utf-8")] * 3, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>")
    fast.chat_template = CHATML
    return fast


def build_tiny_model(tokenizer, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny Llama + tokenizer folder, usable as `model.base_model`."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = build_tokenizer()
    build_tiny_model(tokenizer).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir):
    from groundtune.model import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture
def seed_copy(tmp_path) -> Path:
    dst = tmp_path / "seed.txt"
    shutil.copy(SEED, dst)
    return dst


def tiny_run_overrides(model_dir: Path, out: Path, **extra) -> dict:
    """Config overrides for a seconds-long training run on the tiny model."""
    base = {
        "model.base_model": str(model_dir),
        "model.device": "cpu",
        "model.dtype": "float32",
        "output_dir": str(out),
        "run_name": "tiny",
        "data.path": str(SEED),
        "train.epochs": 1,
        "train.batch_size": 8,
        "train.grad_accum": 1,
        "train.logging_steps": 1,
        "eval.enabled": False,
    }
    base.update(extra)
    return base


def cli_overrides(d: dict) -> list[str]:
    """{'train.epochs': 1} -> ['--train.epochs', '1']"""
    import json

    return [x for k, v in d.items() for x in (f"--{k}", json.dumps(v) if not isinstance(v, str) else v)]


@pytest.fixture(scope="session")
def tiny_run(tiny_model_dir, tmp_path_factory) -> Path:
    """An output folder holding one finished tiny training run, `tiny`, and `latest` pointing at it."""
    from groundtune.cli import main

    out = tmp_path_factory.mktemp("outputs")
    assert main(["train", *cli_overrides(tiny_run_overrides(tiny_model_dir, out))]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_run_folder(tiny_run) -> Path:
    """The finished tiny run folder itself (for export and publish tests)."""
    return tiny_run / "tiny"
