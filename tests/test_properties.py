"""Property-based tests: any bytes either parse or give a clean GroundtuneError, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groundtune.config import load_config
from groundtune.errors import GroundtuneError
from groundtune.readers import read_csv, read_jsonl, read_seed, validate_pairs

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Bytes, and text shaped like our formats (more likely to get past the first checks).
raw = st.binary(max_size=400)
lines = st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40), max_size=8)
texty = lines.map(lambda xs: "\n".join(xs).encode("utf-8"))
jsonish = st.lists(st.sampled_from(['{"question": "Q?", "answer": "A"}', '{"question": 1}', "{", "[]", "null", "",
                                    '{"question": "Q?", "answer": "A", "source": "S"}', '"x"', '{"answer": ""}']),
                   max_size=6).map(lambda xs: "\n".join(xs).encode())
any_input = st.one_of(raw, texty, jsonish)


def parses_or_clean_error(fn, path, data):
    path.write_bytes(data)
    try:
        pairs = fn(path)
    except GroundtuneError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    validate_or_clean_error(pairs)


def validate_or_clean_error(pairs):
    try:
        validate_pairs(pairs, max_length=64)
    except GroundtuneError as e:
        assert "\n" not in str(e)
        return
    for p in pairs:
        assert p.question and p.answer and p.source


@SETTINGS
@given(data=any_input)
def test_seed_reader(tmp_path, data):
    parses_or_clean_error(read_seed, tmp_path / "s.txt", data)


@SETTINGS
@given(data=any_input)
def test_jsonl_reader(tmp_path, data):
    parses_or_clean_error(lambda p: read_jsonl(p, None), tmp_path / "s.jsonl", data)


@SETTINGS
@given(data=any_input)
def test_csv_reader(tmp_path, data):
    parses_or_clean_error(lambda p: read_csv(p, "a passage"), tmp_path / "s.csv", data)


yamlish = st.lists(st.sampled_from(["train:", "  epochs: 2", "  epochs: -1", "lora:", "  r: x", "seed: 3", "- a",
                                    "data: [", "run_name: ok", "\t", "model: {device: cpu}", "x: 1", "train: 5"]),
                   max_size=6).map(lambda xs: "\n".join(xs).encode())


@SETTINGS
@given(data=st.one_of(raw, texty, yamlish))
def test_config_loader(tmp_path, data):
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    try:
        load_config(path)
    except GroundtuneError as e:
        assert "\n" not in str(e)
