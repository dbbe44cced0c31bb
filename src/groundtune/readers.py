"""Readers for Q&A pairs and source passages, with validation that names the file and line.

Formats: the seed format (line 1 the passage, then question and answer lines in turn), JSONL, CSV and
`datasets` datasets. Every problem is a `GroundtuneError` naming the file and line (row for datasets).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from groundtune.config import DataConfig
from groundtune.errors import GroundtuneError

# A passage or answer longer than this many characters per allowed token cannot fit; checked before
# tokenizing so a 10 MB line fails in milliseconds rather than after a long tokenizer call.
MAX_CHARS_PER_TOKEN = 16
JSONL_FIELDS = {"question", "answer", "source", "id", "answerable", "key_facts"}  # key_facts: scoring only, unused in training


@dataclass
class Pair:
    """One question/answer pair and where it came from."""

    question: str
    answer: str
    source: str
    path: str
    line: int
    kind: str = "user"
    """user (the user's own pair) | variant | passage | abstain (added by groundtune.augment)."""
    answer_line: int | None = None
    """Line of the answer when it differs from the question's (seed format)."""
    context: str | None = None
    """Passage shown in the prompt when it differs from `source` (evidence removed, see groundtune.augment)."""

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


# --------------------------------------------------------------------------------------------------
# Reading text safely


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file (BOM and CRLF tolerated); clear errors for missing, binary or non-UTF-8 files."""
    path = Path(path)
    if path.is_dir():
        raise GroundtuneError("expected a file, found a folder", path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise GroundtuneError("file not found", path) from None
    except OSError as e:
        raise GroundtuneError(f"cannot read file: {e.strerror}", path) from None
    if b"\x00" in raw:
        raise GroundtuneError("binary file (contains NUL bytes); expected UTF-8 text", path,
                              raw[: raw.index(b"\x00")].count(b"\n") + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GroundtuneError(f"not UTF-8 text (byte 0x{raw[e.start]:02x})", path,
                              raw[: e.start].count(b"\n") + 1) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _clean(text: str) -> str:
    return " ".join(text.split())


def normalize_question(q: str) -> str:
    """Key used to detect duplicate questions: case, spacing and trailing punctuation ignored."""
    return re.sub(r"[\s?.!]+$", "", " ".join(q.lower().split()))


# --------------------------------------------------------------------------------------------------
# Readers


def read_seed(path: str | Path) -> list[Pair]:
    """Seed format: line 1 is the passage; then a question line and an answer line, repeated."""
    text = read_text(path)
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise GroundtuneError("empty file; expected the passage on line 1, then question and answer lines", path)
    source = _clean(lines[0])
    if not source:
        raise GroundtuneError("line 1 must hold the source passage, found an empty line", path, 1)
    body = lines[1:]
    if not body:
        raise GroundtuneError("no question/answer lines after the passage", path, 1)
    if len(body) % 2:
        raise GroundtuneError(f"question on line {len(lines)} has no answer line (odd number of question/answer lines: {len(body)})",
                              path, len(lines))
    pairs = []
    for i in range(0, len(body), 2):
        qline = i + 2  # 1-based; line 1 is the passage
        pairs.append(Pair(_clean(body[i]), _clean(body[i + 1]), source, str(path), qline, answer_line=qline + 1))
    return pairs


def read_source(path: str | Path) -> str:
    source = _clean(read_text(path))
    if not source:
        raise GroundtuneError("source passage file is empty", path)
    return source


def _row(record: dict, path: str, line: int, default_source: str | None, fields: set[str]) -> Pair:
    unknown = set(record) - fields
    if unknown:
        raise GroundtuneError(f"unknown field {sorted(unknown)[0]!r} (expected {', '.join(sorted(fields))})", path, line)
    for key in ("question", "answer"):
        if key not in record:
            raise GroundtuneError(f"missing field {key!r}", path, line)
        if not isinstance(record[key], str):
            raise GroundtuneError(f"field {key!r} must be a string, got {type(record[key]).__name__}", path, line)
    source = record.get("source")
    if source is not None and not isinstance(source, str):
        raise GroundtuneError(f"field 'source' must be a string, got {type(source).__name__}", path, line)
    source = _clean(source) if source else default_source
    if not source:
        raise GroundtuneError("no source passage: add a 'source' field or set data.source_path", path, line)
    return Pair(_clean(record["question"]), _clean(record["answer"]), source, path, line)


def json_objects(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSONL file; bad JSON or a non-object names its line."""
    out = []
    for lineno, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise GroundtuneError(f"invalid JSON: {e.msg} (column {e.colno})", path, lineno) from None
        if not isinstance(record, dict):
            raise GroundtuneError(f"expected a JSON object, got {type(record).__name__}", path, lineno)
        out.append((lineno, record))
    return out


def read_jsonl(path: str | Path, source: str | None) -> list[Pair]:
    """One JSON object per line: {"question", "answer"[, "source", "id", "answerable", "key_facts"]}."""
    pairs = [_row(record, str(path), lineno, source, JSONL_FIELDS) for lineno, record in json_objects(path)]
    if not pairs:
        raise GroundtuneError("no question/answer rows", path)
    return pairs


def read_csv(path: str | Path, source: str | None) -> list[Pair]:
    """CSV with a header row holding `question` and `answer` (and optionally `source`, `id`)."""
    reader = csv.DictReader(io.StringIO(read_text(path)))
    if not reader.fieldnames or not {"question", "answer"} <= set(reader.fieldnames):
        raise GroundtuneError(f"header must name 'question' and 'answer' columns, got {reader.fieldnames}", path, 1)
    pairs = []
    try:
        for record in reader:
            if None in record:
                raise GroundtuneError("row has more fields than the header", path, reader.line_num)
            if any(v is None for v in record.values()):
                raise GroundtuneError("row has fewer fields than the header", path, reader.line_num)
            pairs.append(_row(record, str(path), reader.line_num, source, set(reader.fieldnames)))
    except csv.Error as e:
        raise GroundtuneError(f"invalid CSV: {e}", path, reader.line_num) from None
    if not pairs:
        raise GroundtuneError("no question/answer rows", path)
    return pairs


def read_hf(name: str, split: str, source: str | None) -> list[Pair]:
    """A `datasets` dataset with question/answer (and optionally source) columns: saved folder or `hf:NAME`."""
    import datasets

    try:
        if name.startswith("hf:"):
            ds = datasets.load_dataset(name[3:], split=split)
        else:
            ds = datasets.load_from_disk(name)
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise GroundtuneError(f"split {split!r} not found (has {', '.join(ds)})", name)
                ds = ds[split]
    except GroundtuneError:
        raise
    except Exception as e:  # datasets raises many types; the user needs the message, not the class
        raise GroundtuneError(f"cannot load dataset: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", name) from None
    missing = {"question", "answer"} - set(ds.column_names)
    if missing:
        raise GroundtuneError(f"dataset lacks column(s) {sorted(missing)} (has {ds.column_names})", name)
    keep = [c for c in ("question", "answer", "source") if c in ds.column_names]
    return [_row({k: r[k] for k in keep}, name, i + 1, source, {"question", "answer", "source"})
            for i, r in enumerate(ds.select_columns(keep))]


def detect_format(path: str) -> str:
    if path.startswith("hf:") or Path(path).is_dir():
        return "hf"
    suffix = Path(path).suffix.lower()
    formats = {".txt": "seed", ".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}
    if suffix not in formats:
        raise GroundtuneError("cannot tell the format from the extension; set data.format (seed, jsonl, csv, hf)", path)
    return formats[suffix]


def read_pairs(cfg: DataConfig) -> list[Pair]:
    """Read and validate the user's pairs as configured."""
    fmt = detect_format(cfg.path) if cfg.format == "auto" else cfg.format
    source = read_source(cfg.source_path) if cfg.source_path else None
    if fmt == "seed":
        pairs = read_seed(cfg.path)
        if source:
            pairs = [dataclasses.replace(p, source=source) for p in pairs]
    elif fmt == "jsonl":
        pairs = read_jsonl(cfg.path, source)
    elif fmt == "csv":
        pairs = read_csv(cfg.path, source)
    else:
        pairs = read_hf(cfg.path, cfg.split, source)
    validate_pairs(pairs, cfg.max_length)
    return pairs


def validate_pairs(pairs: list[Pair], max_length: int) -> None:
    """Empty fields, duplicate questions and hopelessly long text, each reported at its line."""
    seen: dict[str, Pair] = {}
    for p in pairs:
        if not p.question:
            raise GroundtuneError("empty question", p.path, p.line)
        if not p.answer:
            raise GroundtuneError(f"empty answer to {p.question[:60]!r}", p.path, p.answer_line or p.line)
        for name, text in (("question", p.question), ("answer", p.answer), ("source passage", p.source)):
            if len(text) > max_length * MAX_CHARS_PER_TOKEN:
                raise GroundtuneError(f"{name} is {len(text):,} characters, far over data.max_length={max_length} tokens",
                                      p.path, p.line)
        key = normalize_question(p.question)
        if key in seen:
            raise GroundtuneError(f"duplicate question (first at line {seen[key].line}): {p.question[:80]!r}", p.path, p.line)
        seen[key] = p


def data_hash(pairs: list[Pair]) -> str:
    """sha256 over the pairs and passages, recorded in every run manifest."""
    h = hashlib.sha256()
    for p in pairs:
        for part in (p.source, p.question, p.answer, p.kind):
            h.update(part.encode("utf-8"))
            h.update(b"\x00")
    return h.hexdigest()
