"""`groundtune seeds`: one recipe trained and evaluated with several seeds; each seed's numbers and their mean.

On the seed's 48 + 19 dev questions a single run of the default recipe moves by 0.05 to 0.1 with the seed
(README, Seeds), so a recipe change is judged on several seeds, never on one run. Each seed is an ordinary
`groundtune run` of the same config with `seed` set (so both the LoRA initialisation and the example order
change, unless the config pins `train.data_seed`; the untuned base model, which no seed changes, is not evaluated) in
OUT/runs/seed<S>; OUT/seeds.json and OUT/seeds.md hold the harness's numbers per seed, their mean and the
training time. The merged weights of each run are deleted once it is evaluated, unless `keep_weights`:
a series of 135M runs would otherwise take 0.5 GB each (the LoRA adapter, config and reports stay).
With `resume`, a series that was stopped goes on where it stopped: a seed whose run finished (evaluated, with
the same config) is read back, not trained again, and one stopped at a checkpoint continues from it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from groundtune.ablate import COLUMNS, cell, trained_with
from groundtune.config import RunConfig
from groundtune.errors import GroundtuneError


def seeds(cfg: RunConfig, seed_list: list[int], out_dir: str | Path, overwrite: bool = False,
          keep_weights: bool = False, recipe: str = "", resume: bool = False) -> dict:
    """Train and evaluate `cfg` once per seed; write seeds.json and seeds.md under `out_dir`. `recipe` says
    in words which config it is (the CLI passes its --config and overrides)."""
    from groundtune.run import run
    from groundtune.runs import RunDir, write_json

    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise GroundtuneError(f"--seeds: give distinct seeds, got {seed_list}")
    if resume and overwrite:
        raise GroundtuneError("--resume and --overwrite: pass one of them")
    out = Path(out_dir)
    configs = {s: seed_config(cfg, s, out) for s in seed_list}
    dirs = {s: RunDir(out / "runs", f"seed{s}") for s in seed_list}
    done, resumed = {}, {}  # every run folder is checked before the first one trains
    for s in seed_list:
        done[s] = resume and finished_run(dirs[s].final, configs[s])
        resumed[s] = resume and not done[s] and dirs[s].last_checkpoint() is not None
        if not done[s]:
            dirs[s].check(overwrite=overwrite, resume=resumed[s])
    results = []
    for i, s in enumerate(seed_list, start=1):
        if done[s]:
            print(f"[seeds] {i}/{len(seed_list)}: seed {s} finished earlier, read back from {dirs[s].final}", flush=True)
            folder = dirs[s].final
        else:
            print(f"[seeds] {i}/{len(seed_list)}: seed {s}", flush=True)
            folder = run(configs[s], resume=resumed[s], overwrite=overwrite)
        report = json.loads((folder / "eval" / "report.json").read_text(encoding="utf-8"))
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if not keep_weights:
            (folder / "model.safetensors").unlink(missing_ok=True)
        results.append({"seed": s, "run": str(folder), "train_s": manifest.get("timings_s", {}).get("train"),
                        "metrics": report["metrics"]["tuned"]})
        summary = {"recipe": recipe, "seeds": seed_list, "results": results, "mean": mean(results)}
        write_json(out / "seeds.json", summary)
    table = markdown(summary)
    (out / "seeds.md").write_text(table, encoding="utf-8")
    print(table, flush=True)
    return summary


def finished_run(folder: Path, cfg: RunConfig) -> bool:
    """Whether `folder` holds this seed's finished, evaluated run: False when there is none; an error when the
    folder was trained with another config or never evaluated (only --overwrite may replace it)."""
    if not folder.exists():
        return False
    saved = folder / "config.yaml"
    if not saved.is_file() or not (folder / "eval" / "report.json").is_file() or not (folder / "manifest.json").is_file():
        raise GroundtuneError("--resume: this run folder is not a finished, evaluated run; pass --overwrite to "
                              "train it again", folder)
    if not trained_with(saved, cfg):
        raise GroundtuneError("--resume: this seed was trained with another config; pass --overwrite to train it "
                              "again, or another --out", saved)
    return True


def seed_config(cfg: RunConfig, seed: int, out: Path) -> RunConfig:
    """The run config of one seed: the same recipe, this seed, no base-model comparison, under OUT/runs."""
    c = copy.deepcopy(cfg)
    c.seed = seed
    c.eval.enabled, c.eval.compare_base = True, False
    c.output_dir, c.run_name = str(out / "runs"), f"seed{seed}"
    return c


def mean_metrics(all_metrics: list[dict]) -> dict:
    """Per (set, metric) of report.json-style {set: {metric: value}} dicts: the mean over those that have it."""
    out: dict = {}
    for set_name in dict.fromkeys(k for m in all_metrics for k in m):
        for metric in dict.fromkeys(k for m in all_metrics for k in (m.get(set_name) or {})):
            values = [m[set_name][metric] for m in all_metrics if (m.get(set_name) or {}).get(metric) is not None]
            if values:
                out.setdefault(set_name, {})[metric] = round(sum(values) / len(values), 4)
    return out


def mean(results: list[dict]) -> dict:
    """Per (set, metric): the mean over the seeds that have it; and the mean training time."""
    times = [r["train_s"] for r in results if r["train_s"] is not None]
    return {"metrics": mean_metrics([r["metrics"] for r in results]),
            "train_s": round(sum(times) / len(times), 1) if times else None}


def markdown(summary: dict) -> str:
    head = "| seed | " + " | ".join(h for _, _, h in COLUMNS) + " | training s |"
    command = f"groundtune seeds {summary['recipe']} --seeds {' '.join(map(str, summary['seeds']))}".replace("  ", " ")
    lines = [f"Measured with `{command}`.",
             "", head, "|" + "---|" * (len(COLUMNS) + 2)]
    rows = [(str(r["seed"]), r["metrics"], r["train_s"]) for r in summary["results"]]
    rows.append(("mean", summary["mean"]["metrics"], summary["mean"]["train_s"]))
    for name, metrics, train_s in rows:
        cells = [cell((metrics.get(s) or {}).get(m)) for s, m, _ in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {cell(train_s)} |")
    return "\n".join(lines) + "\n"
