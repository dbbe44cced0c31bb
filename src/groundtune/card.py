"""Model and dataset cards: the repo's `model_card.md` / `dataset_card.md` templates, filled from a run folder.

Everything a card states comes from files the run wrote: `manifest.json` (base, data, timings,
versions), `config.yaml`, `dataset/`, and `eval/report.json` from `groundtune eval`. The metadata
block is `huggingface_hub.ModelCardData` (so the Hub's keys and the `model-index` layout are the
library's), and the body is rendered with `ModelCard.from_template` (Jinja2).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from groundtune.errors import GroundtuneError
from groundtune.evaluation.harness import METRICS
from groundtune.questions import PREMISE_DETAILS
from groundtune.source_check import FILE as SOURCE_CHECK_FILE

TEMPLATES = Path(__file__).resolve().parents[2]
MODEL_CARD_TEMPLATE = TEMPLATES / "model_card.md"
DATASET_CARD_TEMPLATE = TEMPLATES / "dataset_card.md"
REPORT = Path("eval") / "report.json"
MODEL_INDEX_SET = "dev"
LANGUAGES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "nl": "Dutch",
             "pt": "Portuguese", "pl": "Polish", "uk": "Ukrainian", "ru": "Russian", "zh": "Chinese", "ja": "Japanese"}
TAGS = ["groundtune", "lora", "grounded-qa", "question-answering"]


# --------------------------------------------------------------------------------------------------
# Inputs from the run folder


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GroundtuneError("file not found", path) from None
    except json.JSONDecodeError as e:
        raise GroundtuneError(f"invalid JSON: {e.msg}", path, e.lineno) from None


def load_eval_report(run: Path) -> dict | None:
    """The run's evaluation report, checked for what the card needs; None when there is none."""
    path = run / REPORT
    if not path.is_file():
        return None
    report = check_report(read_json(path), path)
    if MODEL_INDEX_SET not in report["metrics"]["tuned"]:
        raise GroundtuneError(f"evaluation report has no `{MODEL_INDEX_SET}` set, which the card's model-index reports",
                              path)
    return report


def check_report(report: dict, path: Path) -> dict:
    """`report` (read from `path`) if it has what the card needs: its sets and the tuned model's metrics."""
    tuned = report.get("metrics", {}).get("tuned")
    if not isinstance(tuned, dict) or not isinstance(report.get("sets"), dict):
        raise GroundtuneError("evaluation report has no `sets` / `metrics.tuned`; rerun `groundtune eval`", path)
    return report


def load_extra_report(path: Path, run: Path, report: dict | None) -> dict:
    """A report of `groundtune eval` on other question sets, checked to be about the model published: it scored
    the folder `run` (its `model` path, as given to `groundtune eval`, resolves to it), after that run was
    trained, against the same passage as the run's own report."""
    extra = check_report(read_json(path), path)
    model = extra.get("model")
    if not model or Path(model).resolve() != run.resolve():
        raise GroundtuneError(f"this report scored {model!r}, not the run being published ({run}); "
                              f"run `groundtune eval --model {run} ...` for it", path)
    trained = read_json(run / "manifest.json").get("created", "")
    if str(extra.get("created", "")) < str(trained):
        raise GroundtuneError(f"this report ({extra.get('created')}) is older than the run it names (trained "
                              f"{trained}): it scored an earlier model of that folder", path)
    if report is not None and extra.get("source_sha256") != report.get("source_sha256"):
        raise GroundtuneError("this report was scored against another source passage than the run's own report "
                              "(source_sha256 differs)", path)
    return extra


def with_extra_sets(report: dict, extras: list[tuple[str, Path, dict]]) -> dict:
    """`report` with the question sets of each extra report (name in the repository, file, report) added, each
    set tagged with the report it came from (`publish.extra_reports` checked that no set comes twice)."""
    merged = copy.deepcopy(report)
    merged["intervals"] = merged.get("intervals") or {}
    for name, _, extra in extras:
        for set_name, info in extra["sets"].items():
            merged["sets"][set_name] = {**info, "report": name, "created": extra.get("created")}
            for model in ("tuned", "checked", "base"):
                for part in ("metrics", "intervals"):
                    values = (extra.get(part) or {}).get(model) or {}
                    if set_name in values:
                        merged[part][model] = {**(merged[part].get(model) or {}), set_name: values[set_name]}
    return merged


def require_eval_report(run: Path, hint: str = "") -> dict:
    """`load_eval_report`, where a missing report is an error naming the file (`hint` says what else to do)."""
    report = load_eval_report(run)
    if report is None:
        raise GroundtuneError(f"no evaluation report; run `groundtune eval` first{hint}", run / REPORT)
    return report


def audit_findings(run: Path, report: dict | None) -> list[str] | None:
    """The data-audit findings as card lines ([] = audit ran, nothing found), or None when it was not run.

    Seam for `groundtune.evaluation.audit` (written in parallel): the report's `audit` key wins;
    otherwise `audit_pairs` is run on the run's configured pairs when that module is installed.
    """
    found = (report or {}).get("audit")
    if found is None:
        found = _run_audit(run)
    if found is None:
        return None
    return [_finding_text(f) for f in ([found] if isinstance(found, (str, dict)) else found)]


def _run_audit(run: Path) -> list | None:
    try:
        from groundtune.evaluation.audit import audit_pairs
    except ImportError:
        return None
    from groundtune.config import load_run_config
    from groundtune.readers import read_pairs

    try:
        return audit_pairs(read_pairs(load_run_config(run / "config.yaml").data))
    except GroundtuneError:  # the pairs file is not where the run's config says (another machine or folder)
        return None


def _finding_text(finding) -> str:
    """One line per finding: a string as is; an audit_pairs dict as origin, question and what is unsupported."""
    if not isinstance(finding, dict):
        return str(finding)
    parts = [f"{label} not in the passage: “{span['text']}”" for key, label in
             (("unsupported_numbers", "number"), ("unsupported_names", "name")) for span in finding.get(key) or []]
    parts += [f"weakly supported: “{span['text'].strip(' ,;')}”" for span in
              (finding.get("unsupported_sentences") or []) + [finding.get("unsupported_clause") or {}] if span]
    # origin is "PATH:LINE"; the card names the file only (a local path means nothing on the Hub and leaks the user's layout)
    where = f"`{Path(str(finding['origin'])).name}` " if finding.get("origin") else ""
    return f"{where}{finding.get('question', '')}: {'; '.join(parts) or 'flagged'}".strip()


def card_license(manifest: dict, override: str | None = None) -> str:
    """The license id for the cards: the user's choice, else the base model's, else `other`."""
    return override or manifest.get("base_model_license") or "other"


def param_count(folder: Path) -> int:
    """Parameters of the merged model, read from the safetensors header (nothing is loaded)."""
    from safetensors import safe_open

    total = 0
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(file, framework="np") as f:
            for key in f.keys():
                n = 1
                for d in f.get_slice(key).get_shape():
                    n *= d
                total += n
    return total


def human_count(n: int) -> str:
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


# --------------------------------------------------------------------------------------------------
# Evaluation tables and model-index


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _change(base, tuned) -> str:
    return "–" if base is None or tuned is None else f"{tuned - base:+.3f}"


def eval_tables(report: dict) -> dict:
    """Per question set: n, answerable and one row per metric with base, tuned and the change."""
    tuned_all = report["metrics"]["tuned"]
    base_all = report["metrics"].get("base") or {}
    checked_all = report["metrics"].get("checked") or {}  # reports before the source check: none
    bounds_all = (report.get("intervals") or {}).get("tuned") or {}  # reports before intervals: none
    sets = []
    for name, info in report["sets"].items():
        tuned, base, bounds = tuned_all.get(name, {}), base_all.get(name, {}), bounds_all.get(name, {})
        checked = checked_all.get(name, {})
        metrics = [m for m in METRICS if m in tuned] + [m for m in tuned if m not in METRICS]
        rows = [{"metric": m, "base": _fmt(base.get(m)), "tuned": _fmt(tuned.get(m)), "checked": _fmt(checked.get(m)),
                 "interval": f"{bounds[m]['low']:.3f}–{bounds[m]['high']:.3f}" if bounds.get(m) else "–",
                 "change": _change(base.get(m), tuned.get(m))} for m in metrics]
        sets.append({"name": name, "n": info.get("n"), "answerable": info.get("answerable"), "rows": rows,
                     "report": info.get("report"), "created": info.get("created")})
    return {"created": report.get("created", "unknown date"), "source_sha256": report.get("source_sha256", "unknown"),
            "sets": sets, "total_questions": sum(s["n"] or 0 for s in sets if s["name"] != "train"),
            "checked": bool(checked_all)}


def model_index(report: dict, dataset_type: str):
    """`EvalResult`s for the tuned model's dev-set metrics (and the unanswerable set's, when evaluated): what
    the Hub shows in the model-index. Metrics that do not apply to a set (None, e.g. abstention on
    answerable questions) are left out."""
    from huggingface_hub import EvalResult

    tuned = report["metrics"]["tuned"]
    results = []
    for split in [MODEL_INDEX_SET] + [s for s in ("unanswerable",) if s in tuned]:
        values = tuned[split]
        for metric in [m for m in METRICS if m in values] + [m for m in values if m not in METRICS]:
            if values[metric] is None:
                continue
            results.append(EvalResult(task_type="text-generation", task_name="Grounded question answering",
                                      dataset_type=dataset_type, dataset_name=f"groundtune {split} questions",
                                      dataset_split=split, metric_type=metric, metric_name=metric.replace("_", " "),
                                      metric_value=round(float(values[metric]), 4)))
    return results


# --------------------------------------------------------------------------------------------------
# Cards


def _data_context(manifest: dict, dataset_rows: list[dict]) -> dict:
    data = manifest.get("data", {})
    augment = manifest.get("config", {}).get("data", {}).get("augment", {})
    kinds = ", ".join(f"{v} {k}" for k, v in sorted(data.get("by_kind", {}).items()))
    return {
        "user_pairs": data.get("user_pairs", "?"),
        "path": Path(str(data.get("path", "?"))).name,
        "data_hash": data.get("data_hash", "?"),
        "examples": data.get("examples", len(dataset_rows)),
        "kinds": kinds or "unknown mix",
        "tokens": f"{data.get('tokens_min', '?')}-{data.get('tokens_max', '?')} (median {data.get('tokens_median', '?')})",
        "variant_answers": augment.get("variant_answers", "user"),
        "swap_questions": augment.get("swap_questions", 0),
        "title_twins": augment.get("title_twins", 0),
        "mention_questions": augment.get("mention_questions", False),
        "unstated_questions": augment.get("unstated_questions", False),
        "partner_questions": augment.get("partner_questions", False),
        "false_premises": augment.get("false_premises", 0),
        "premise_details": ", ".join({"number": "a number", "direction": 'a direction such as "ramp up" turned into "cut"',
                                      "country": "another country"}[d]
                                     for d in augment.get("false_premise_details", PREMISE_DETAILS)),
        "compound_questions": augment.get("compound_questions", 0),
        "missing_evidence": augment.get("missing_evidence", 0),
        "missing_details": augment.get("missing_details", 0),
        "passage_layout": manifest.get("config", {}).get("data", {}).get("passage_layout", "paragraph"),
    }


def _train_context(manifest: dict) -> dict:
    cfg = manifest.get("config", {})
    lora, train = cfg.get("lora", {}), cfg.get("train", {})
    env = manifest.get("environment", {})
    packages = env.get("packages", {})
    final_loss = manifest.get("final_loss")
    return {
        "r": lora.get("r"), "alpha": lora.get("alpha"), "dropout": lora.get("dropout"),
        "merge_scale": lora.get("merge_scale", 1.0),  # runs before the key merged the update as trained
        "target_modules": lora.get("target_modules"), "epochs": train.get("epochs"),
        "learning_rate": train.get("learning_rate"), "lr_scheduler": train.get("lr_scheduler"),
        "global_batch": manifest.get("global_batch_size"), "seed": manifest.get("seed"),
        "prefix_gradient": train.get("prefix_gradient", True),  # runs before the key had the full gradient
        "length_power": train.get("length_power", 0.0), "length_power_user": train.get("length_power_user", True),
        "loraplus_ratio": train.get("loraplus_ratio", 0.0),
        "final_loss": "unknown" if final_loss is None else f"{final_loss:.3f}",
        "train_seconds": manifest.get("timings_s", {}).get("train", "?"),
        "hardware": env.get("cuda") or f"CPU ({env.get('cpu_count', '?')} cores)",
        "transformers": packages.get("transformers"), "peft": packages.get("peft"), "torch": packages.get("torch"),
    }


def model_card_data(*, base_id: str, license: str, languages: list[str], merged: bool, repo_id: str,
                    report: dict | None, dataset_repo_id: str | None):
    from huggingface_hub import ModelCardData

    name = repo_id.split("/")[-1]
    return ModelCardData(
        license=license,
        language=languages,
        base_model=base_id,
        base_model_relation="finetune" if merged else "adapter",
        library_name="transformers" if merged else "peft",
        pipeline_tag="text-generation",
        tags=TAGS + (["merged"] if merged else ["peft"]),
        datasets=[dataset_repo_id] if dataset_repo_id else None,
        model_name=name if report else None,
        eval_results=model_index(report, dataset_repo_id or "groundtune-dev") if report else None,
    )


def render_model_card(run: Path, *, repo_id: str, base_id: str, merged: bool, report: dict | None,
                      languages: list[str], license: str | None = None, dataset_repo_id: str | None = None,
                      template: Path = MODEL_CARD_TEMPLATE, staged: Path | None = None):
    """The README.md of the model repo, as a `huggingface_hub.ModelCard`; `staged` (the repository's folder) lets
    the card say whether its weights are the very file the evaluation measured."""
    from huggingface_hub import ModelCard

    manifest = read_json(run / "manifest.json")
    rows = _dataset_rows(run)
    license = card_license(manifest, license)
    data = model_card_data(base_id=base_id, license=license, languages=languages, merged=merged, repo_id=repo_id,
                           report=report, dataset_repo_id=dataset_repo_id)
    source = rows[0]["source"] if rows else ""
    user_questions = [r["question"] for r in rows if r.get("kind") == "user"] or [r["question"] for r in rows] or ["?"]
    cfg = manifest.get("config", {})
    context = {
        "model_name": repo_id.split("/")[-1], "repo_id": repo_id, "merged": merged, "base_model": base_id,
        "base_name": manifest.get("base_model"), "base_note": manifest.get("base_model_note"), "license": license,
        "languages": ", ".join(LANGUAGES.get(code, code) for code in languages), "abstain_answer": cfg.get("data", {}).get("abstain_answer", ""),
        "source_excerpt": source if len(source) <= 600 else source[:600].rsplit(" ", 1)[0] + " …",
        "source_chars": len(source), "example_question_literal": json.dumps(user_questions[0], ensure_ascii=False),
        "data": _data_context(manifest, rows), "train": _train_context(manifest),
        "audit": audit_findings(run, report), "has_eval": report is not None,
        "eval": eval_tables(report) if report else None, "dataset_repo_id": dataset_repo_id,
        "base_size": human_count(param_count(run)),
        "weights": measured_weights(report, staged),
        "source_check": (run / SOURCE_CHECK_FILE).is_file(),  # publish copies it to groundtune/
    }
    if not template.is_file():
        raise GroundtuneError("model card template not found", template)
    return ModelCard.from_template(data, template_path=str(template), **context)


def measured_weights(report: dict | None, staged: Path | None) -> dict:
    """The evaluated weights' sha256 (report.json's `weights_sha256`) and whether the staged repository holds the
    same files (None when not known: no staged folder, or a report from before the hashes)."""
    from groundtune.evaluation.report import weights_sha256

    measured = (report or {}).get("weights_sha256") or {}
    same = None
    if measured and staged is not None:
        same = weights_sha256(staged) == measured
    return {"measured": measured, "same": same}


def _dataset_rows(run: Path) -> list[dict]:
    import datasets

    folder = run / "dataset"
    if not folder.is_dir():
        return []
    ds = datasets.load_from_disk(str(folder))
    split = ds["train"] if isinstance(ds, datasets.DatasetDict) else ds
    return split.select_columns([c for c in ("question", "source", "kind") if c in split.column_names]).to_list()


def render_dataset_card(run: Path, *, repo_id: str, model_repo_id: str, languages: list[str], license: str,
                        template: Path = DATASET_CARD_TEMPLATE):
    """The README.md of the dataset repo, as a `huggingface_hub.DatasetCard`."""
    from huggingface_hub import DatasetCard, DatasetCardData

    manifest = read_json(run / "manifest.json")
    data = DatasetCardData(license=license, language=languages, task_categories=["question-answering"],
                           tags=TAGS[:1] + ["grounded-qa", "synthetic"], pretty_name=repo_id.split("/")[-1],
                           size_categories=["n<1K"])
    if not template.is_file():
        raise GroundtuneError("dataset card template not found", template)
    return DatasetCard.from_template(data, template_path=str(template), repo_id=repo_id, model_repo_id=model_repo_id,
                                     data=_data_context(manifest, _dataset_rows(run)),
                                     abstain_answer=manifest.get("config", {}).get("data", {}).get("abstain_answer", ""))
