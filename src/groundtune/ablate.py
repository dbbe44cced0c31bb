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

from groundtune.config import RunConfig, load_config, load_run_config, read_yaml, to_dict
from groundtune.errors import GroundtuneError

COLUMNS = [  # (set, metric, header)
    ("dev", "key_fact_accuracy", "dev key-fact acc."),
    ("dev", "refusal_rate", "dev refusals"),
    ("unanswerable", "abstention_rate", "unanswerable abstained"),
    ("unanswerable", "abstention_auroc", "abstention AUROC"),
    ("dev", "unsupported_rate", "dev unsupported #/name"),
    ("unanswerable", "unsupported_rate", "unans. unsupported #/name"),
    ("dev", "mean_consistency", "dev consistency"),
    ("train", "token_recall", "train token recall"),
]


BASE_ROW = "untuned base model (row 1's prompt)"


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


def ablate(plan: str | Path, out_dir: str | Path, overwrite: bool = False, only: list[int] | None = None) -> list[dict]:
    """Train and evaluate every row (or the rows numbered in `only`, 1-based) and write the table. With
    `only`, the other rows keep their earlier results from ablation.json, each checked against its run
    folder's saved config: a row whose plan changed since it was measured is an error, not a stale number."""
    from groundtune.evaluation.harness import evaluate_run
    from groundtune.runs import write_json
    from groundtune.train import train

    base_config, rows = read_plan(plan)
    out = Path(out_dir)
    selected = list(range(1, len(rows) + 1)) if not only else sorted(set(only))
    if selected[0] < 1 or selected[-1] > len(rows):
        raise GroundtuneError(f"--rows: the plan has rows 1 to {len(rows)}", plan)
    results = earlier_results(out, rows, selected) if only else {}
    for n in selected:
        row, cfg = rows[n - 1], rows[n - 1].config
        place(cfg, out, n)
        print(f"[ablate] row {n}/{len(rows)}: {row.name}", flush=True)
        t0 = time.perf_counter()
        folder = train(cfg, overwrite=overwrite)
        train_s = time.perf_counter() - t0
        report = evaluate_run(folder, cfg.eval)
        if n == 1 and report["metrics"].get("base"):
            results[0] = {"row": 0, "name": BASE_ROW, "overrides": {}, "train_s": None,
                          "metrics": report["metrics"]["base"]}
        results[n] = {"row": n, "name": row.name, "overrides": row.overrides, "train_s": round(train_s, 1),
                      "metrics": report["metrics"]["tuned"]}
        ordered = [results[k] for k in sorted(results)]
        write_json(out / "ablation.json", {"plan": str(plan), "base_config": base_config, "rows": ordered})
    table = markdown(ordered, plan)
    (out / "ablation.md").write_text(table, encoding="utf-8")
    print(table, flush=True)
    return ordered


def place(cfg: RunConfig, out: Path, n: int) -> None:
    """Where row n's run goes: OUT/runs/row<n>, with the base model compared in row 1 only."""
    cfg.output_dir = str(out / "runs")
    cfg.run_name = f"row{n}"
    cfg.eval.compare_base = n == 1


SPEED_ONLY = {"eval": ("batch_size", "draft_budget"), "train": ("prefix_reuse",)}
"""Settings that change how fast a row runs, not what it computes: eval batching (greedy, the same answers;
tests/test_generate.py) and prefix reuse (the same gradient up to float rounding; tests/test_train.py)."""


def comparable(config: dict) -> dict:
    """A resolved config without the speed-only settings."""
    return {**config, **{section: {k: v for k, v in config[section].items() if k not in keys}
                         for section, keys in SPEED_ONLY.items()}}


def trained_with(saved: Path, cfg: RunConfig) -> bool:
    """Whether the run whose config.yaml is `saved` computed what `cfg` would (speed-only settings aside)."""
    return comparable(to_dict(load_run_config(saved))) == comparable(to_dict(cfg))


def earlier_results(out: Path, rows: list[Row], selected: list[int]) -> dict[int, dict]:
    """Results of the rows not rerun, from OUT/ablation.json, each verified against OUT/runs/row<n>/config.yaml."""
    import json

    path = out / "ablation.json"
    if not path.is_file():
        raise GroundtuneError("--rows needs an earlier complete ablation here (no ablation.json)", path)
    saved = json.loads(path.read_text(encoding="utf-8"))["rows"]
    numbered = {r.get("row", i if saved[0]["train_s"] is None else i + 1): r for i, r in enumerate(saved)}
    kept = {}
    for n, row in enumerate(rows, start=1):
        if n in selected:
            continue
        measured = out / "runs" / f"row{n}" / "config.yaml"
        if n not in numbered or not measured.is_file():
            raise GroundtuneError(f"row {n} ({row.name}) has no earlier result; run it too", path)
        place(row.config, out, n)
        if not trained_with(measured, row.config):
            raise GroundtuneError(f"row {n} ({row.name}) changed since it was measured; run it too", measured)
        kept[n] = {**numbered[n], "row": n, "name": row.name, "overrides": row.overrides}
    if 0 in numbered and 1 not in selected:
        kept[0] = {**numbered[0], "row": 0, "name": BASE_ROW}
    return kept


def cell(value) -> str:
    """A table cell: a float to two decimals, None empty (also used by scripts/epoch_curve.py)."""
    return "" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def plot_columns(xs: list[float], metrics: list[dict], columns: list, xlabel: str, title: str, path: Path) -> None:
    """One line per (set, metric, name) column over `xs`, from each x's {set: {metric: value}} (the scripts'
    epoch and merge-scale curves); columns with a missing value are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for s, k, name in columns:
        values = [m.get(s, {}).get(k) for m in metrics]
        if all(v is not None for v in values):
            ax.plot(xs, values, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(results: list[dict], plan: str | Path) -> str:
    head = "| row | " + " | ".join(h for _, _, h in COLUMNS) + " | training s |"
    lines = [f"Measured with `groundtune ablate --plan {plan}`.", "", head, "|" + "---|" * (len(COLUMNS) + 2)]
    for r in results:
        cells = [cell(r["metrics"].get(s, {}).get(m)) for s, m, _ in COLUMNS]
        lines.append(f"| {r['name']} | " + " | ".join(cells) + f" | {cell(r['train_s'])} |")
    return "\n".join(lines) + "\n"

