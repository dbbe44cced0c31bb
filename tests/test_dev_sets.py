"""The held-out question sets (data/dev.jsonl, data/unanswerable.jsonl, data/holdout.jsonl, data/confirm.jsonl,
data/fourth.jsonl, data/fifth.jsonl) are well formed, blind and grounded.

Blind: no question repeats (or nearly repeats) a training question of the seed file. Grounded: every key fact
of an answerable question can be found in the passage or in the reference answer, so a scorer that looks for
key facts never demands something the source does not support.
"""

from __future__ import annotations

import difflib
import json

import pytest

from groundtune.readers import read_jsonl, read_seed, normalize_question, validate_pairs

from conftest import REPO, SEED

DEV = REPO / "data" / "dev.jsonl"
UNANSWERABLE = REPO / "data" / "unanswerable.jsonl"
HOLDOUT = REPO / "data" / "holdout.jsonl"
CONFIRM = REPO / "data" / "confirm.jsonl"
FOURTH = REPO / "data" / "fourth.jsonl"
FIFTH = REPO / "data" / "fifth.jsonl"
SETS = {"dev": (DEV, True), "unans": (UNANSWERABLE, False), "hold": (HOLDOUT, None),
        "conf": (CONFIRM, None), "four": (FOURTH, None), "five": (FIFTH, None)}  # None: both kinds
FIELDS = {"id": str, "question": str, "answer": str, "answerable": bool, "key_facts": list}
NEAR_COPY = 0.8  # difflib ratio above which a question counts as a reworded copy of a training question


def rows(path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert all(line.strip() for line in lines), f"{path.name}: blank line"
    out = []
    for lineno, line in enumerate(lines, 1):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            pytest.fail(f"{path.name}:{lineno}: invalid JSON: {e.msg}")
    return out


def squash(text: str) -> str:
    """Case- and whitespace-insensitive form used for key-fact matching."""
    return " ".join(text.lower().split())


@pytest.fixture(scope="module")
def seed():
    pairs = read_seed(SEED)
    return pairs[0].source, [p.question for p in pairs]


@pytest.mark.parametrize("prefix", SETS)
def test_fields_types_and_ids(prefix):
    path, answerable = SETS[prefix]
    data = rows(path)
    for i, row in enumerate(data, 1):
        assert set(row) == set(FIELDS), f"{row.get('id')}: fields {sorted(row)}"
        for key, kind in FIELDS.items():
            assert type(row[key]) is kind, f"{row['id']}: {key} is {type(row[key]).__name__}"
        assert row["id"] == f"{prefix}-{i:02d}"
        assert row["question"].strip() and row["answer"].strip()
        assert answerable is None or row["answerable"] is answerable, row["id"]


@pytest.mark.parametrize("prefix", SETS)
def test_ids_unique(prefix):
    ids = [r["id"] for r in rows(SETS[prefix][0])]
    assert len(ids) == len(set(ids))


def test_questions_unique_across_the_sets():
    questions = [normalize_question(r["question"]) for path, _ in SETS.values() for r in rows(path)]
    repeated = {q for q in questions if questions.count(q) > 1}
    assert not repeated


@pytest.mark.parametrize("prefix", SETS)
def test_questions_are_not_training_questions(prefix, seed):
    _, training = seed
    for row in rows(SETS[prefix][0]):
        for t in training:
            assert normalize_question(row["question"]) != normalize_question(t), row["id"]
            ratio = difflib.SequenceMatcher(None, normalize_question(row["question"]), normalize_question(t)).ratio()
            assert ratio < NEAR_COPY, f"{row['id']} is a near copy ({ratio:.2f}) of {t!r}"


@pytest.mark.parametrize("path", [DEV, HOLDOUT, CONFIRM, FOURTH, FIFTH])
def test_answerable_key_facts_are_grounded(seed, path):
    passage, _ = seed
    for row in rows(path):
        if not row["answerable"]:
            continue
        assert 1 <= len(row["key_facts"]) <= 3, row["id"]
        where = squash(passage) + "\n" + squash(row["answer"])
        for fact in row["key_facts"]:
            assert isinstance(fact, list) and fact, f"{row['id']}: empty key fact"
            assert all(isinstance(alt, str) and alt.strip() for alt in fact), f"{row['id']}: blank alternative"
            assert any(squash(alt) in where for alt in fact), f"{row['id']}: {fact} not in passage or answer"


def test_unanswerable_rows_have_no_key_facts_and_say_so():
    for row in rows(UNANSWERABLE) + [r for path in (HOLDOUT, CONFIRM, FOURTH, FIFTH) for r in rows(path) if not r["answerable"]]:
        assert row["key_facts"] == [], row["id"]
        assert row["answer"].startswith("The source does not say"), row["id"]


def test_set_sizes():
    assert sum(r["answerable"] for r in rows(DEV)) >= 30
    assert len(rows(UNANSWERABLE)) >= 10
    holdout = [r["answerable"] for r in rows(HOLDOUT)]
    assert sum(holdout) >= 20 and holdout.count(False) >= 10
    confirm = [r["answerable"] for r in rows(CONFIRM)]
    assert sum(confirm) >= 25 and confirm.count(False) >= 12
    for path in (FOURTH, FIFTH):
        answerable = [r["answerable"] for r in rows(path)]
        assert sum(answerable) >= 25 and answerable.count(False) >= 12, path.name


@pytest.mark.parametrize("prefix", SETS)
def test_groundtune_reader_accepts_the_sets(prefix, seed):
    passage, _ = seed
    pairs = read_jsonl(SETS[prefix][0], passage)
    validate_pairs(pairs, max_length=1024)
    assert len(pairs) == len(rows(SETS[prefix][0]))


@pytest.mark.parametrize("prefix", SETS)
def test_no_dev_question_is_generated_for_training(prefix):
    """The augmented training set of the default config asks none of the dev questions (after normalisation).
    Template-level likeness remains (e.g. 'What is the capital of X?' for a country the passage names) and is
    disclosed in the README; only exact questions are ruled out here."""
    from groundtune.augment import augment
    from groundtune.config import load_config

    cfg = load_config(REPO / "configs" / "smollm2-135m-cpu.yaml")
    training = {normalize_question(p.question) for p in augment(read_seed(SEED), cfg.data.augment, cfg.data.abstain_answer)}
    assert len(training) > 100
    leaked = [r["id"] for r in rows(SETS[prefix][0]) if normalize_question(r["question"]) in training]
    assert not leaked
