"""The real embedded SmolLM2-135M-Instruct through the real CLI: a few training steps, then `pipeline`.

Slow (the first run on a machine dequantizes the GGUF, ~40 s; then about a minute): `make test` runs it,
`make test-fast` skips it.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from test_train import RUN_FILES

pytestmark = pytest.mark.slow

CONFIG = REPO / "configs" / "smollm2-135m-cpu.yaml"


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("embedded")
    # 0.06 epochs of the default dataset: 2 optimizer steps at the default global batch of 8
    cmd = [sys.executable, str(REPO / "train" / "train.py"), "--config", str(CONFIG), "--output_dir", str(out),
           "--run_name", "few-steps", "--train.epochs", "0.06", "--eval.enabled", "false"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out, proc.stdout


def test_a_few_steps_write_exactly_the_run_files(embedded_run):
    out, stdout = embedded_run
    assert {p.name for p in out.iterdir()} == {"few-steps", "latest"}
    assert {p.name for p in (out / "few-steps").iterdir()} == RUN_FILES
    manifest = json.loads((out / "few-steps" / "manifest.json").read_text())
    assert manifest["base_model"] == "embedded:smollm2-135m-instruct"
    steps = [e for e in json.loads((out / "few-steps" / "log_history.json").read_text()) if "loss" in e]
    assert len(steps) >= 1 and "trained in" in stdout
    adapter = json.loads((out / "few-steps" / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_pipeline_answers_a_question_offline(embedded_run, monkeypatch):
    from transformers import pipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out, _ = embedded_run
    pipe = pipeline("text-generation", model=str(out / "latest"))
    reply = pipe([{"role": "user", "content": "How many Patriot systems is Germany providing?"}], max_new_tokens=24)
    message = reply[0]["generated_text"][-1]
    assert message["role"] == "assistant" and len(message["content"].split()) >= 2, message
    prompt = pipe.tokenizer.apply_chat_template([{"role": "user", "content": "Who?"}], tokenize=False,
                                                add_generation_prompt=True)
    assert "two additional Patriot missile systems" in prompt, "the saved chat template inserts the passage"
