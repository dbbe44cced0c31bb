"""Data stage: user pairs + passage -> augmented, validated chat dataset (`datasets.DatasetDict`).

Entry point: `prepare_data(cfg, tokenizer)`. Rows carry `messages` (system prompt with the passage,
question, answer), the `source` passage, the plain `question`/`answer`, the `kind` of example and its
`origin` (file:line). Tokenized copies add `input_ids`, `labels` (answer-only loss) and `length`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from groundtune.augment import augment
from groundtune.chat import system_text, to_messages, tokenize_chat
from groundtune.config import DataConfig
from groundtune.errors import GroundtuneError
from groundtune.readers import Pair, data_hash, read_pairs


def build_rows(pairs: list[Pair], cfg: DataConfig) -> list[dict]:
    return [
        {
            "messages": to_messages(p.question, p.answer, system_text(p.context or p.source, cfg)),
            "question": p.question,
            "answer": p.answer,
            "source": p.source,
            "context": p.context or p.source,
            "kind": p.kind,
            "origin": p.where,
        }
        for p in pairs
    ]


def build_dataset(cfg: DataConfig):
    """(DatasetDict with a `train` split, the user's own pairs)."""
    import datasets

    user_pairs = read_pairs(cfg)
    pairs = augment(user_pairs, cfg.augment, cfg.abstain_answer)
    return datasets.DatasetDict({"train": datasets.Dataset.from_list(build_rows(pairs, cfg))}), user_pairs


def tokenize_dataset(ds, tokenizer, max_length: int):
    """Add input_ids / labels / length; an over-long example is an error naming its origin."""
    # A plain loop, not ds.map: an error surfaces with its origin, not inside a worker.
    rows = [tokenize_chat(tokenizer, r["messages"], max_length, where=r["origin"]) for r in ds]
    out = ds.add_column("input_ids", [r["input_ids"] for r in rows])
    out = out.add_column("labels", [r["labels"] for r in rows])
    return out.add_column("length", [len(r["input_ids"]) for r in rows])


def stats(tokenized, max_length: int) -> dict:
    """Counts per kind and token-length summary, as printed by `groundtune data`."""
    lengths = sorted(tokenized["length"])
    answer_tokens = [sum(1 for x in labels if x != -100) for labels in tokenized["labels"]]
    by_kind: Counter = Counter()
    for kind, n in zip(tokenized["kind"], answer_tokens):
        by_kind[kind] += n
    return {
        "examples": len(lengths),
        "by_kind": dict(Counter(tokenized["kind"])),
        "tokens_total": sum(lengths),
        "tokens_min": lengths[0],
        "tokens_median": lengths[len(lengths) // 2],
        "tokens_max": lengths[-1],
        "answer_tokens_total": sum(answer_tokens),
        "answer_tokens_by_kind": dict(by_kind),
        "max_length": max_length,
        "truncated": 0,  # over-long examples are errors (see tokenize_chat), never cut
    }


def format_stats(s: dict) -> str:
    def per_kind(counts: dict) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))

    loss_by_kind = f" ({per_kind(s['answer_tokens_by_kind'])})" if s.get("answer_tokens_by_kind") else ""
    return (f"{s['examples']} examples ({per_kind(s['by_kind'])}); tokens per example min {s['tokens_min']}, "
            f"median {s['tokens_median']}, max {s['tokens_max']} (max_length {s['max_length']}, "
            f"{s['truncated']} truncated); {s['tokens_total']} tokens, {s['answer_tokens_total']} carry loss{loss_by_kind}")


@dataclass
class PreparedData:
    """Everything the train stage needs from the data stage."""

    dataset: object
    """DatasetDict with a `train` split of chat rows (what is saved with a run)."""
    tokenized: object
    """The `train` split with input_ids, labels (answer-only) and length."""
    user_pairs: list[Pair]
    """The user's own pairs, before augmentation."""
    stats: dict
    """Counts and token lengths (see `stats`), plus the data hash."""


def prepare_data(cfg: DataConfig, tokenizer, save_to: str | Path | None = None) -> PreparedData:
    """Read, validate, augment and tokenize; optionally `save_to_disk`."""
    ds, user_pairs = build_dataset(cfg)
    tokenized = tokenize_dataset(ds["train"], tokenizer, cfg.max_length)
    info = stats(tokenized, cfg.max_length)
    info["data_hash"] = data_hash(user_pairs)
    if save_to is not None:
        try:
            ds.save_to_disk(str(save_to))
        except OSError as e:
            raise GroundtuneError(f"cannot save dataset: {e.strerror or e}", save_to) from None
    return PreparedData(ds, tokenized, user_pairs, info)
