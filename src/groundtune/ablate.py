"""`groundtune ablate`: train and evaluate one run per row of a plan, and tabulate what each technique buys.

A plan (configs/ablation/*.yaml) names a base config and rows of dotted overrides; each row is exactly
`groundtune run --config BASE <overrides>` and is validated like any config before anything runs.
The table (ablation.md / ablation.json under --out) has the harness's numbers per row, the untuned
base model's row (from the first run's --compare-base), and each row's training time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from groundtune.config import RunConfig, load_config, read_yaml
from groundtune.errors import GroundtuneError

COLUMNS = [  # (set, metric, header)
    ("dev", "key_fact_accuracy", "dev key-fact acc."),
    ("dev", "refusal_rate", "dev refusals"),
    ("unanswerable", "abstention_rate", "unanswerable abstained"),
    ("dev", "unsupported_rate", "dev unsupported #/name"),
    ("unanswerable", "unsupported_rate", "unans. unsupported #/name"),
    ("dev", "mean_consistency", "dev consistency"),
    ("train", "token_recall", "train token recall"),
]


@dataclass
class Row:
    name: str
    overrides: dict
    config: RunConfig


def read_plan(path: str | Path) -> tuple[str, list[Row]]:
    """(base config path, validated rows). Unknown keys anywhere are errors with file and line."""
    values, lines = read_yaml(path)
    unknown = set(values) - {"base", "rows"}
    if unknown:
        key = sorted(unknown)[0]
        raise GroundtuneError(f"{key}: unknown plan key (expected base, rows)", path, lines.get(key))
    base = values.get("base")
    rows = values.get("rows")
    if not isinstance(base, str) or not isinstance(rows, list) or not rows:
        raise GroundtuneError("a plan needs `base: CONFIG.yaml` and a non-empty list `rows`", path, 1)
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or set(row) - {"name", "overrides"} or not isinstance(row.get("name"), str):
            raise GroundtuneError(f"row {i + 1}: expected {{name: ..., overrides: {{...}}}}", path, lines.get("rows"))
        overrides = row.get("overrides") or {}
        try:
            cfg = load_config(base, overrides)
        except GroundtuneError as e:
            raise GroundtuneError(f"row {i + 1} ({row['name']}): {e}", path, lines.get("rows")) from None
        out.append(Row(row["name"], overrides, cfg))
    return base, out


def ablate(plan: str | Path, out_dir: str | Path, overwrite: bool = False) -> list[dict]:
    from groundtune.evaluation.harness import evaluate_run
    from groundtune.runs import write_json
    from groundtune.train import train

    base_config, rows = read_plan(plan)
    out = Path(out_dir)
    results = []
    for i, row in enumerate(rows):
        cfg = row.config
        cfg.output_dir = str(out / "runs")
        cfg.run_name = f"row{i + 1}"
        cfg.eval.compare_base = i == 0
        print(f"[ablate] row {i + 1}/{len(rows)}: {row.name}", flush=True)
        t0 = time.perf_counter()
        folder = train(cfg, overwrite=overwrite)
        train_s = time.perf_counter() - t0
        report = evaluate_run(folder, cfg.eval)
        if i == 0 and "base" in report["metrics"]:
            results.append({"name": "untuned base model (row 1's prompt)", "overrides": {}, "train_s": None,
                            "metrics": report["metrics"]["base"]})
        results.append({"name": row.name, "overrides": row.overrides, "train_s": round(train_s, 1),
                        "metrics": report["metrics"]["tuned"]})
        write_json(out / "ablation.json", {"plan": str(plan), "base_config": base_config, "rows": results})
    table = markdown(results, plan)
    (out / "ablation.md").write_text(table, encoding="utf-8")
    print(table, flush=True)
    return results


def _cell(value) -> str:
    return "" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def markdown(results: list[dict], plan: str | Path) -> str:
    head = "| row | " + " | ".join(h for _, _, h in COLUMNS) + " | training s |"
    lines = [f"Measured with `groundtune ablate --plan {plan}`.", "", head, "|" + "---|" * (len(COLUMNS) + 2)]
    for r in results:
        cells = [_cell(r["metrics"].get(s, {}).get(m)) for s, m, _ in COLUMNS]
        lines.append(f"| {r['name']} | " + " | ".join(cells) + f" | {_cell(r['train_s'])} |")
    return "\n".join(lines) + "\n"

