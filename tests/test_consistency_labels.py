"""Checks on the hand-labelled factual-consistency set (tests/data/consistency_labels.jsonl).

The file is ground truth for tuning and testing a consistency metric, so a malformed row or a label
that disagrees with its category would silently skew both; these tests catch that.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import SEED

LABELS = Path(__file__).parent / "data" / "consistency_labels.jsonl"
FIELDS = {"id": str, "passage": str, "source": str, "question": str, "reference": str, "answer": str,
          "label": int, "category": str}
# every category fixes the label: faithful kinds (incl. a correct abstention) are 1, the rest 0
CATEGORY_LABEL = {
    "paraphrase": 1, "verbatim": 1, "partial": 1, "abstention_correct": 1,
    "entity_swap": 0, "number_change": 0, "polarity_flip": 0, "added_claim": 0, "wrong_condition": 0,
    "abstention_wrong": 0, "hallucinated_answer": 0, "off_topic": 0,
}
MIN_ROWS, MIN_PER_CATEGORY, MIN_PASSAGES = 160, 10, 3


def load_rows(path: Path) -> list[dict]:
    """Parse every line as a JSON object; the line number is in the failure message."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"{path.name}:{n}: blank line"
        row = json.loads(line)
        assert isinstance(row, dict), f"{path.name}:{n}: not a JSON object"
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return load_rows(LABELS)


def test_fields_and_types(rows):
    for row in rows:
        assert set(row) == set(FIELDS), f"{row.get('id')}: fields {sorted(row)}"
        for key, typ in FIELDS.items():
            # bool is an int subclass; a label of true/false is a mistake, not a 1/0
            assert type(row[key]) is typ, f"{row['id']}: {key} is {type(row[key]).__name__}"
            if typ is str:
                assert row[key].strip(), f"{row['id']}: empty {key}"


def test_ids_unique_and_numbered(rows):
    ids = [row["id"] for row in rows]
    assert len(set(ids)) == len(ids)
    assert ids == [f"lab-{i:03d}" for i in range(1, len(rows) + 1)]


def test_label_matches_category(rows):
    for row in rows:
        assert row["category"] in CATEGORY_LABEL, f"{row['id']}: unknown category {row['category']}"
        assert row["label"] in (0, 1)
        assert row["label"] == CATEGORY_LABEL[row["category"]], f"{row['id']}: label vs {row['category']}"


def test_source_identical_within_passage(rows):
    sources: dict[str, set[str]] = {}
    for row in rows:
        sources.setdefault(row["passage"], set()).add(row["source"])
    assert all(len(texts) == 1 for texts in sources.values()), {p: len(t) for p, t in sources.items()}
    assert len(set.union(*sources.values())) == len(sources), "two passage names share one text"


def test_rutte_source_is_seed_line_one(rows):
    seed_passage = SEED.read_text(encoding="utf-8").splitlines()[0]
    assert {row["source"] for row in rows if row["passage"] == "rutte"} == {seed_passage}


def test_size_and_coverage(rows):
    assert len(rows) >= MIN_ROWS
    per_category = Counter(row["category"] for row in rows)
    assert set(per_category) == set(CATEGORY_LABEL)
    assert min(per_category.values()) >= MIN_PER_CATEGORY, per_category
    assert len({row["passage"] for row in rows}) >= MIN_PASSAGES


def test_no_repeated_answer_to_same_question(rows):
    pairs = Counter((row["question"], row["answer"]) for row in rows)
    assert max(pairs.values()) == 1, [p for p, c in pairs.items() if c > 1]
