import json

import pytest

from groundtune.config import DataConfig
from groundtune.errors import GroundtuneError
from groundtune.readers import read_csv, read_hf, read_jsonl, read_pairs, read_seed, validate_pairs

from conftest import SEED

PASSAGE = "Alice founded Acme in 2001. Acme makes two kinds of widgets."


def test_seed_file_parses_nine_pairs():
    pairs = read_seed(SEED)
    assert len(pairs) == 9
    assert pairs[0].question == "What is NATO's stance on supporting Ukraine?"
    assert pairs[0].answer.startswith("NATO Secretary General Mark Rutte has emphasized unwavering support")
    assert pairs[0].source.startswith("NATO Secretary General Mark Rutte has been at the forefront")
    assert [p.line for p in pairs] == list(range(2, 20, 2))
    assert all(p.answer_line == p.line + 1 for p in pairs)


def write(tmp_path, name, data: bytes | str):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return p


def test_bom_and_crlf_are_tolerated(tmp_path):
    p = write(tmp_path, "s.txt", b"\xef\xbb\xbf" + f"{PASSAGE}\r\nWho founded Acme?\r\nAlice.\r\n\r\n".encode())
    (pair,) = read_seed(p)
    assert (pair.question, pair.answer, pair.source) == ("Who founded Acme?", "Alice.", PASSAGE)


@pytest.mark.parametrize("content, line, message", [
    (f"{PASSAGE}\nWho founded Acme?\nAlice.\nWhen?\n", 4, "has no answer line"),
    (f"{PASSAGE}\nWho founded Acme?\n\n", 2, "has no answer line"),
    (f"{PASSAGE}\nWho founded Acme?\n \nWhen?\n2001.\n", 3, "empty answer"),
    (f"{PASSAGE}\n\nAlice.\n", 2, "empty question"),
    (f"\nWho?\nAlice.\n", 1, "line 1 must hold the source passage"),
    (f"{PASSAGE}\nWho founded Acme?\nAlice.\nwho founded  acme\nBob.\n", 4, "duplicate question (first at line 2)"),
])
def test_seed_errors_name_the_line(tmp_path, content, line, message):
    p = write(tmp_path, "s.txt", content)
    with pytest.raises(GroundtuneError) as e:
        read_pairs(DataConfig(path=str(p)))
    assert str(e.value).startswith(f"{p}:{line}: ")
    assert message in str(e.value)


def test_empty_file(tmp_path):
    with pytest.raises(GroundtuneError, match="empty file"):
        read_seed(write(tmp_path, "s.txt", ""))


def test_binary_file(tmp_path):
    with pytest.raises(GroundtuneError, match=r"s.txt:3: binary file"):
        read_seed(write(tmp_path, "s.txt", b"\x89PNG\r\n\x1a\n\x00\x00"))


def test_not_utf8_reports_line(tmp_path):
    with pytest.raises(GroundtuneError, match=r"s.txt:3: not UTF-8 text \(byte 0xe9\)"):
        read_seed(write(tmp_path, "s.txt", f"{PASSAGE}\nWho?\n".encode() + b"caf\xe9\n"))


def test_missing_file(tmp_path):
    with pytest.raises(GroundtuneError, match="file not found"):
        read_seed(tmp_path / "nope.txt")


def test_huge_line_fails_fast(tmp_path):
    p = write(tmp_path, "s.txt", f"{PASSAGE}\nWho?\n{'x' * 10_000_000}\n")
    with pytest.raises(GroundtuneError, match=r"s.txt:2: answer is 10,000,000 characters, far over data.max_length=1024"):
        read_pairs(DataConfig(path=str(p)))


def test_jsonl_with_source_file(tmp_path):
    src = write(tmp_path, "passage.txt", PASSAGE + "\n")
    rows = [{"question": "Who founded Acme?", "answer": "Alice."}, {"question": "What does Acme make?", "answer": "Widgets."}]
    p = write(tmp_path, "qa.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    pairs = read_pairs(DataConfig(path=str(p), source_path=str(src)))
    assert [(x.question, x.source, x.line) for x in pairs] == [("Who founded Acme?", PASSAGE, 1), ("What does Acme make?", PASSAGE, 2)]


@pytest.mark.parametrize("line2, message", [
    ('{"question": "Q2?", "answer": ', "invalid JSON"),
    ('["Q2?", "A2"]', "expected a JSON object, got list"),
    ('{"question": "Q2?"}', "missing field 'answer'"),
    ('{"question": "Q2?", "answer": 42}', "field 'answer' must be a string, got int"),
    ('{"question": "Q2?", "answer": "A", "extra": 1}', "unknown field 'extra'"),
    ('{"question": "Q2?", "answer": "A", "source": ""}', None),
])
def test_jsonl_errors_name_the_line(tmp_path, line2, message):
    p = write(tmp_path, "qa.jsonl", json.dumps({"question": "Q1?", "answer": "A1", "source": PASSAGE}) + "\n" + line2 + "\n")
    if message is None:  # an empty source with no fallback is an error too
        message = "no source passage"
    with pytest.raises(GroundtuneError) as e:
        read_jsonl(p, None)
    assert str(e.value).startswith(f"{p}:2: ") and message in str(e.value)


def test_csv_reader_and_errors(tmp_path):
    p = write(tmp_path, "qa.csv", 'question,answer,source\n"Who, exactly?",Alice.,' + f'"{PASSAGE}"\n')
    (pair,) = read_csv(p, None)
    assert pair.question == "Who, exactly?" and pair.source == PASSAGE
    bad = write(tmp_path, "bad.csv", "q,a\nx,y\n")
    with pytest.raises(GroundtuneError, match=r"bad.csv:1: header must name 'question' and 'answer'"):
        read_csv(bad, PASSAGE)
    short = write(tmp_path, "short.csv", "question,answer\nWho?\n")
    with pytest.raises(GroundtuneError, match=r"short.csv:2: row has fewer fields"):
        read_csv(short, PASSAGE)


def test_hf_dataset_from_disk(tmp_path):
    import datasets

    ds = datasets.DatasetDict({"train": datasets.Dataset.from_list(
        [{"question": "Who founded Acme?", "answer": "Alice.", "source": PASSAGE}])})
    ds.save_to_disk(str(tmp_path / "ds"))
    (pair,) = read_hf(str(tmp_path / "ds"), "train", None)
    assert (pair.question, pair.answer, pair.source, pair.line) == ("Who founded Acme?", "Alice.", PASSAGE, 1)
    with pytest.raises(GroundtuneError, match="split 'test' not found"):
        read_hf(str(tmp_path / "ds"), "test", None)


def test_unknown_extension(tmp_path):
    with pytest.raises(GroundtuneError, match="cannot tell the format"):
        read_pairs(DataConfig(path=str(write(tmp_path, "qa.xml", "<x/>"))))
