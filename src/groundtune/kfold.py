"""`groundtune kfold`: how well a recipe answers the user's own questions when it never trained on them.

The dev sets under data/ were written by the team, some after reading the model's failures, so they are
not blind. The user's pairs are: fold i holds out pairs i, i+k, i+2k, ... (1-based, in file order),
trains `groundtune run`'s recipe on the rest (the passage questions still cover the whole passage), and
answers the held-out questions next to the user's trained ones, with the untuned base model beside it
(and, as `checked`, the tuned answers after the source check, whose evidence is the fold's trained pairs only).
Each fold is an ordinary run folder (OUT/runs/fold<i>, with its data files under OUT/data/fold<i>).

The table (kfold.md / kfold.json under --out) has, per fold and on average, token recall and F1 of the
answers against the user's reference answers, the consistency score, unsupported numbers/names and
refusals: `heldout` is generalisation, `train` is what the same model does on questions it was taught.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from groundtune.ablate import cell  # the tables' cell format
from groundtune.config import RunConfig
from groundtune.errors import GroundtuneError
from groundtune.evaluation.report import MODELS  # tuned, checked (after the source check), base
from groundtune.readers import Pair

HELDOUT = "heldout"
METRICS = [("token_recall", "recall"), ("token_f1", "F1"), ("mean_consistency", "consistency"),
           ("unsupported_rate", "unsupported #/name"), ("refusal_rate", "refused")]


def split(n: int, k: int) -> list[list[int]]:
    """0-based indices held out by each of k folds: round-robin, so every fold holds out ~n/k pairs."""
    if not 2 <= k <= n:
        raise GroundtuneError(f"--folds must be between 2 and the number of pairs ({n}), got {k}")
    return [list(range(i, n, k)) for i in range(k)]


def write_fold(pairs: list[Pair], held: list[int], folder: Path) -> tuple[Path, Path]:
    """train.jsonl (the kept pairs, each with its passage) and heldout.jsonl (a question set) in `folder`."""
    def write_jsonl(path: Path, rows: list[dict]) -> Path:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return path

    folder.mkdir(parents=True, exist_ok=True)
    kept = [{"question": p.question, "answer": p.answer, "source": p.source}
            for i, p in enumerate(pairs) if i not in held]
    asked = [{"id": f"pair-{i + 1}", "question": pairs[i].question, "answer": pairs[i].answer} for i in held]
    return write_jsonl(folder / "train.jsonl", kept), write_jsonl(folder / f"{HELDOUT}.jsonl", asked)


def fold_config(cfg: RunConfig, train: Path, heldout: Path, out: Path, i: int) -> RunConfig:
    """The run config of fold i: the fold's pairs, its held-out question set (plus `train`), the base compared."""
    c = copy.deepcopy(cfg)
    c.data.path, c.data.format, c.data.source_path = str(train), "jsonl", None
    c.eval.question_sets, c.eval.compare_base, c.eval.enabled = ["train", str(heldout)], True, True
    c.output_dir, c.run_name = str(out / "runs"), f"fold{i}"
    return c


def kfold(cfg: RunConfig, k: int, out_dir: str | Path, overwrite: bool = False, only: list[int] | None = None) -> dict:
    """Train and evaluate k folds of the user's pairs (or the folds numbered in `only`, 1-based: a quick check
    of the fold that decides, the mean then covers those folds only); write kfold.json and kfold.md."""
    from groundtune.readers import read_pairs
    from groundtune.run import run
    from groundtune.runs import RunDir, write_json

    pairs = read_pairs(cfg.data)
    if len({p.source for p in pairs}) != 1:
        raise GroundtuneError("kfold needs pairs about one passage", cfg.data.path)
    out = Path(out_dir)
    folds = split(len(pairs), k)
    selected = sorted(set(only)) if only else list(range(1, k + 1))
    if selected[0] < 1 or selected[-1] > k:
        raise GroundtuneError(f"--only: folds are numbered 1 to {k}, got {selected}")
    for i in selected:  # every fold's run folder is checked before the first one trains
        RunDir(out / "runs", f"fold{i}").check(overwrite=overwrite, resume=False)
    results = []
    for i, held in [(i, folds[i - 1]) for i in selected]:
        print(f"[kfold] fold {i}/{k}: holding out pair(s) {', '.join(str(j + 1) for j in held)}", flush=True)
        train, heldout = write_fold(pairs, held, out / "data" / f"fold{i}")
        folder = run(fold_config(cfg, train, heldout, out, i), overwrite=overwrite)
        report = json.loads((folder / "eval" / "report.json").read_text(encoding="utf-8"))
        results.append({"fold": i, "held_out": [j + 1 for j in held], "metrics": report["metrics"],
                        "n": {name: info["n"] for name, info in report["sets"].items()}})
        summary = {"data": cfg.data.path, "folds": k, "only": selected if only else None, "results": results,
                   "mean": mean(results)}
        write_json(out / "kfold.json", summary)
    table = markdown(summary)
    (out / "kfold.md").write_text(table, encoding="utf-8")
    print(table, flush=True)
    return summary


def mean(results: list[dict]) -> dict:
    """Per (model, set, metric): the average over folds, weighting every question alike."""
    out: dict = {}
    for model in MODELS:
        for set_name in ("train", HELDOUT):
            for metric, _ in METRICS:
                values = [(r["metrics"][model][set_name][metric], r["n"][set_name]) for r in results
                          if (r["metrics"].get(model) or {}).get(set_name, {}).get(metric) is not None]
                if values:
                    total = sum(w for _, w in values)
                    out.setdefault(model, {}).setdefault(set_name, {})[metric] = round(
                        sum(v * w for v, w in values) / total, 4)
    return out


def markdown(summary: dict) -> str:
    head = "| fold | held-out pairs | model | set | " + " | ".join(h for _, h in METRICS) + " |"
    only = f" --only {' '.join(map(str, summary['only']))}" if summary.get("only") else ""
    lines = [f"Measured with `groundtune kfold --folds {summary['folds']}{only}` on {summary['data']}.", "", head,
             "|" + "---|" * (len(METRICS) + 4)]
    rows = [(str(r["fold"]), ", ".join(map(str, r["held_out"])), r["metrics"]) for r in summary["results"]]
    which = f"folds {', '.join(map(str, summary['only']))}" if summary.get("only") else "all"
    rows.append(("mean", which, summary["mean"]))
    for fold, held, metrics in rows:
        for model in MODELS:
            for set_name in (HELDOUT, "train"):
                m = (metrics.get(model) or {}).get(set_name)
                if m:
                    cells = " | ".join(cell(m.get(k)) for k, _ in METRICS)
                    lines.append(f"| {fold} | {held} | {model} | {set_name} | {cells} |")
    return "\n".join(lines) + "\n"
