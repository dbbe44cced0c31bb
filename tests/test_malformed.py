"""Bad input through the real CLI: one line on stderr naming the file (and line), non-zero exit, no
traceback, and no output folder left behind. The small inputs live in tests/data/malformed/; the
binary and 10 MB ones are generated here. See tests/data/malformed/README.md for the list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from groundtune.cli import main

HERE = Path(__file__).parent / "data" / "malformed"


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines(), captured.out


def train_args(tiny_model_dir, out, *extra):
    return ["train", "--model.base_model", str(tiny_model_dir), "--model.device", "cpu", "--output_dir", str(out),
            "--run_name", "r", "--eval.enabled", "false", *extra]


def generated(tmp_path, name):
    """Inputs too big or too binary to keep in git."""
    p = tmp_path / name
    passage = (HERE / "odd_lines.txt").read_text().splitlines()[0]
    if name == "binary.txt":
        p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    elif name == "huge_line.txt":
        p.write_text(f"{passage}\nWhat is this?\n{'x' * 10_000_000}\n")
    return p


DATA_CASES = [
    # (file, extra flags, expected line or None, expected message)
    ("odd_lines.txt", [], 4, "question on line 4 has no answer line"),
    ("empty.txt", [], None, "empty file"),
    ("binary.txt", [], 3, "binary file (contains NUL bytes)"),
    ("huge_line.txt", [], 2, "answer is 10,000,000 characters, far over data.max_length=1024"),
    ("not_utf8.txt", [], 3, "not UTF-8 text (byte 0xe9)"),
    ("empty_answer.txt", [], 3, "empty answer"),
    ("empty_question.txt", [], 2, "empty question"),
    ("duplicate_questions.txt", [], 4, "duplicate question (first at line 2)"),
    ("long_answer.txt", ["--data.max_length", "100"], 2, "over data.max_length=100"),
    ("invalid_json.jsonl", [], 2, "invalid JSON"),
    ("missing_key.jsonl", [], 1, "missing field 'answer'"),
    ("wrong_type.jsonl", [], 1, "field 'answer' must be a string, got list"),
    ("not_object.jsonl", [], 1, "expected a JSON object, got list"),
    ("unknown_field.jsonl", [], 1, "unknown field 'anwser'"),
    ("no_source.jsonl", [], 1, "no source passage"),
    ("bad_header.csv", [], 1, "header must name 'question' and 'answer' columns"),
    ("ragged.csv", [], 2, "row has fewer fields than the header"),
    ("unknown_format.xml", [], None, "cannot tell the format from the extension"),
    ("does_not_exist.txt", [], None, "file not found"),
]


@pytest.mark.parametrize("name, extra, line, message", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data_file(name, extra, line, message, tmp_path, tiny_model_dir, capsys):
    path = generated(tmp_path, name) if name in ("binary.txt", "huge_line.txt") else HERE / name
    out = tmp_path / "out"
    code, err, _ = run_cli(train_args(tiny_model_dir, out, "--data.path", str(path), *extra), capsys)
    where = f"{path}:{line}: " if line else f"{path}"
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"groundtune: error: {where}") and message in err[0], err
    assert not out.exists()


CONFIG_CASES = [
    ("unknown_key.yaml", 4, "train.learnig_rate: unknown config key (did you mean 'train.learning_rate'?)"),
    ("negative_lr.yaml", 2, "train.learning_rate: must be > 0"),
    ("invalid_yaml.yaml", 2, "invalid YAML"),
    ("list_config.yaml", 1, "a config file must be a mapping"),
    ("wrong_type.yaml", 2, "lora.r: expected an integer, got 'sixteen'"),
    ("bad_run_name.yaml", 1, "run_name: must be a plain folder name"),
    ("zero_batch.yaml", 2, "train.batch_size: must be >= 1"),
    ("missing.yaml", None, "config file not found"),
]


@pytest.mark.parametrize("name, line, message", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_file(name, line, message, tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "out"
    code, err, _ = run_cli(["train", "--config", str(HERE / name), "--output_dir", str(out)], capsys)
    where = f"{HERE / name}:{line}: " if line else f"{HERE / name}: "
    assert code == 2 and len(err) == 1 and err[0].startswith(f"groundtune: error: {where}{message}"), err
    assert not out.exists()


def test_bom_and_crlf_seed_is_accepted(tiny_model_dir, capsys):
    code, err, out = run_cli(["data", "--data.path", str(HERE / "bom_crlf.txt"), "--model.base_model",
                              str(tiny_model_dir), "--data.augment.seed_repeats", "1"], capsys)
    assert code == 0 and "user 1," in out, out  # its one pair, read


def test_missing_model_folder(tmp_path, capsys):
    out = tmp_path / "out"
    code, err, _ = run_cli(["train", "--model.base_model", str(tmp_path / "no-model"), "--output_dir", str(out)], capsys)
    assert code == 2 and err == [f"groundtune: error: {tmp_path / 'no-model'}: model folder not found or has no config.json"]
    assert not out.exists()


def test_pickle_only_model_folder_is_refused(tmp_path, tiny_model_dir, capsys):
    """safetensors only: a folder whose weights are a pickle (pytorch_model.bin) is not loaded."""
    import shutil

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    code, err, _ = run_cli(train_args(folder, tmp_path / "out"), capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith(f"groundtune: error: {folder}: cannot load model")
    assert not (tmp_path / "out").exists()


def test_unknown_embedded_model(tmp_path, capsys):
    code, err, _ = run_cli(["train", "--model.base_model", "embedded:gpt-5", "--output_dir", str(tmp_path / "o")], capsys)
    assert code == 2 and err == ["groundtune: error: unknown embedded model 'gpt-5'; available: smollm2-135m-instruct"]


def test_hub_id_while_offline_says_how_to_use_the_embedded_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err, _ = run_cli(["train", "--model.base_model", "nobody/not-a-cached-model", "--output_dir",
                            str(tmp_path / "o")], capsys)
    assert code == 2 and len(err) == 1
    assert "cannot load base model 'nobody/not-a-cached-model'" in err[0] and "embedded:smollm2-135m-instruct" in err[0]
    assert not (tmp_path / "o").exists()


def test_output_folder_under_a_file(tmp_path, tiny_model_dir, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err, _ = run_cli(train_args(tiny_model_dir, blocker / "out"), capsys)
    assert code == 2 and err == [f"groundtune: error: {blocker / 'out'}: cannot create output folder: {blocker} is not a folder"]


def test_unwritable_output_folder(tmp_path, tiny_model_dir, capsys):
    if os.geteuid() == 0:  # root ignores permission bits; /proc refuses new folders even to root
        target, parent = Path("/proc/groundtune-test/out"), Path("/proc")
    else:
        parent = tmp_path / "ro"
        parent.mkdir()
        parent.chmod(0o555)
        target = parent / "out"
    code, err, _ = run_cli(train_args(tiny_model_dir, target), capsys)
    assert code == 2 and err == [f"groundtune: error: {parent}: output folder is not writable: "
                                 f"{'No such file or directory' if os.geteuid() == 0 else 'Permission denied'}"], err
    assert not target.exists()


@pytest.mark.parametrize("command", ["ask", "eval", "export", "publish"])
@pytest.mark.parametrize("model", ["no-such-folder", "empty-folder"])
def test_a_bad_model_folder(command, model, tmp_path, capsys):
    path = tmp_path / model
    if model == "empty-folder":
        path.mkdir()
    out = tmp_path / "out"
    args = {"ask": ["Who?"], "eval": ["--out", str(out)], "export": ["--merged", str(out)],
            "publish": ["--repo-id", "me/model", "--dry-run", "--staging-dir", str(out)]}[command]
    code, err, _ = run_cli([command, "--model", str(path), *args], capsys)
    missing = "run folder not found" if command == "publish" else "model folder not found"
    empty = "not a groundtune run folder (no manifest.json)" if command == "publish" else "not a model folder (no config.json)"
    expected = missing if model == "no-such-folder" else empty
    assert code == 2 and len(err) == 1 and err[0].startswith(f"groundtune: error: {path}: {expected}"), err
    assert not out.exists(), "nothing written"


def test_debug_flag_shows_the_traceback(tmp_path):
    from groundtune.errors import GroundtuneError

    with pytest.raises(GroundtuneError):
        main(["--debug", "ask", "--model", str(tmp_path / "nope"), "Who?"])


def test_corpus_has_at_least_25_inputs():
    assert len(DATA_CASES) + len(CONFIG_CASES) + 8 >= 25
    committed = {p.name for p in HERE.iterdir() if p.name != "README.md"}
    used = {c[0] for c in DATA_CASES + [(c[0],) for c in CONFIG_CASES]} | {"bom_crlf.txt"}
    assert committed <= used, f"inputs in tests/data/malformed/ without a test: {committed - used}"
