"""The evaluation report: report.json (stable, documented below), report.md, report.html and metrics.png.

report.json keys (other tools, such as the model card, read these; add keys, never rename them):

    model          str   the evaluated model folder
    base_model     str | null   the base model compared against (null without --compare-base)
    created        str   ISO 8601 time of the evaluation
    source_sha256  str   sha256 of the source passage the questions were asked about
    weights_sha256 {FILE: sha256}   the evaluated folder's *.safetensors files (which weights were measured)
    timings_s      {load_tuned, generate_tuned, abstain_logprob_tuned, load_base?, generate_base?,
                    abstain_logprob_base?, score, total}: seconds
    scorer         {heldout_auc, heldout_balanced_accuracy, labels_sha256}: how far `consistency` is trusted
    sets           {SET: {"n": questions, "answerable": answerable questions}}
    metrics        {"tuned": {SET: {METRIC: value}}, "checked": ... | null, "base": {SET: {METRIC: value}} | null}
                   "checked": the tuned model's answers after the source check (`eval.source_check`;
                   groundtune.source_check), same abstain_logprob; null when it is off
                   METRIC in key_fact_accuracy, abstention_rate, refusal_rate, unsupported_rate,
                   mean_consistency, token_recall, token_f1, rougeL, abstention_auroc; a value is null where
                   the metric does not apply (no key facts, no unanswerable questions). abstention_auroc: ROC
                   AUC of abstain_logprob, the set's unanswerable questions against the answerable questions
                   of every set but `train` (how well the model knows what the source does not say).
                   yes_no_accuracy: of the answerable questions whose reference opens with Yes or No, the
                   share of answers that open with the same word (`harness.yes_no_agrees`)
    intervals      {"tuned": {SET: {METRIC: {"low", "high", "n"} | null}}, "checked": ... | null, "base": ... | null}: 95% Wilson
                   intervals of the metrics that are shares of questions (`harness.PROPORTIONS`), over the n
                   questions each counts (null where it counts none)
    questions      [{"set", "id", "question", "reference", "answerable", "key_facts",
                     "tuned": ANSWER, "checked": ANSWER | null, "base": ANSWER | null}]
                   ANSWER = {"answer", "consistency", "signals": {name: value}, "flags": {unsupported_numbers,
                   unsupported_names, unsupported_sentences, weakest_clause, polarity_flips, role_flips,
                   abstention}, "key_fact_hit": bool | null, "yes_no": bool | null, "abstained": bool,
                   "abstain_logprob": log P(the answer opens with data.abstain_answer's first words)}

The folder is written under a temporary name and renamed into place, so it is never half-written.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import shutil
import time
from pathlib import Path

from groundtune.evaluation.harness import METRICS
from groundtune.runs import write_json

LABELS = {"key_fact_accuracy": "key-fact accuracy", "abstention_rate": "abstention (unanswerable)",
          "refusal_rate": "refusal (answerable)", "unsupported_rate": "unsupported number/name",
          "mean_consistency": "mean consistency", "token_recall": "token recall", "token_f1": "token F1",
          "rougeL": "ROUGE-L", "abstention_auroc": "abstention AUROC", "yes_no_accuracy": "yes/no right"}
REPORT_FILES = ("report.json", "report.md", "report.html", "metrics.png")
MODELS = ("tuned", "checked", "base")
"""The models a report can hold, in table order: the tuned model, its answers after the source check, the base."""
COLORS = {"tuned": "tab:blue", "checked": "tab:green", "base": "tab:gray"}


def weights_sha256(model_dir: Path) -> dict[str, str]:
    """sha256 of each safetensors file of the model folder (the merged weights of a run folder)."""
    out = {}
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                h.update(block)
        out[path.name] = h.hexdigest()
    return out


def build_report(target, sets: dict, questions: list, scored: dict[str, list[dict]], timings: dict) -> dict:
    from groundtune.evaluation.harness import intervals, metrics_by_set
    from groundtune.evaluation.score import load_weights

    def per_set(name: str, summary) -> dict | None:
        """`summary(questions, results)` of each set for one model (None for a model not evaluated)."""
        if name not in scored:
            return None
        return {set_name: summary(qs, [r for q, r in zip(questions, scored[name]) if q.set == set_name])
                for set_name, qs in sets.items()}

    def metrics(name: str) -> dict | None:
        return metrics_by_set(sets, questions, scored[name]) if name in scored else None

    weights = load_weights()
    auc = {r["signal"]: r for r in weights.get("heldout", [])}.get("consistency", {})
    return {
        "model": str(target.model_dir),
        "base_model": target.base.base_model if "base" in scored and target.base else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source_sha256": hashlib.sha256(target.source.encode("utf-8")).hexdigest(),
        "weights_sha256": weights_sha256(target.model_dir),
        "timings_s": dict(timings),
        "scorer": {"heldout_auc": auc.get("auc"), "heldout_balanced_accuracy": auc.get("balanced_accuracy"),
                   "labels_sha256": weights.get("labels_sha256")},
        "sets": {name: {"n": len(qs), "answerable": sum(q.answerable for q in qs)} for name, qs in sets.items()},
        "metrics": {m: metrics(m) for m in MODELS},
        "intervals": {m: per_set(m, intervals) for m in MODELS},
        "questions": [
            {"set": q.set, "id": q.id, "question": q.question, "reference": q.reference, "answerable": q.answerable,
             "key_facts": q.key_facts, **{m: scored[m][i] if m in scored else None for m in MODELS}}
            for i, q in enumerate(questions)],
    }


# --------------------------------------------------------------------------------------------------
# Tables


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def headline_rows(report: dict) -> list[list[str]]:
    """One row per (set, model): the set, its size, the model and each metric."""
    rows = []
    for set_name, info in report["sets"].items():
        for model in MODELS:
            metrics = (report["metrics"].get(model) or {}).get(set_name)
            if metrics is not None:
                rows.append([set_name, str(info["n"]), model] + [_fmt(metrics[m]) for m in METRICS])
    return rows


def headline(report: dict) -> str:
    """The fixed-width table `groundtune run` prints at the end."""
    head = ["set", "n", "model"] + [LABELS[m] for m in METRICS]
    rows = [head] + headline_rows(report)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    bounds = (report.get("intervals") or {}).get("tuned") or {}
    short = {"key_fact_accuracy": "key facts", "abstention_rate": "abstention"}
    spans = [f"{name} {short[m]} {b['low']:.2f}-{b['high']:.2f} (n {b['n']})"
             for name, per_metric in bounds.items() if name != "train"
             for m, b in per_metric.items() if b and m in short]
    tail = ["[groundtune] tuned model, 95% intervals on these few questions: " + "; ".join(spans)] if spans else []
    return "\n".join(["", "[groundtune] evaluation (key-fact accuracy, abstention/refusal rates, consistency):"] + lines
                     + tail)


def markdown_table(report: dict) -> str:
    head = ["set", "n", "model"] + [LABELS[m] for m in METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in headline_rows(report)]
    return "\n".join(lines)


def interval_table(report: dict) -> str:
    """The shares of questions with their 95% intervals (reports written before intervals existed: none)."""
    from groundtune.evaluation.harness import PROPORTIONS

    lines = ["95% intervals (Wilson) of the shares: the range of shares the n questions each counts are consistent "
             "with, i.e. how far a share could move on other questions like these (runs with other training seeds "
             "spread further).", "",
             "| set | n | model | " + " | ".join(LABELS[m] for m in PROPORTIONS) + " |", "|" + "---|" * (3 + len(PROPORTIONS))]
    for set_name, info in report["sets"].items():
        for model in MODELS:
            values = (report["metrics"].get(model) or {}).get(set_name)
            bounds = ((report.get("intervals") or {}).get(model) or {}).get(set_name)
            if values is None or bounds is None:
                continue
            cells = [_fmt(values[m]) if not bounds.get(m) else f"{values[m]:.2f} ({bounds[m]['low']:.2f}-{bounds[m]['high']:.2f})"
                     for m in PROPORTIONS]
            lines.append(f"| {set_name} | {info['n']} | {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _flag_words(answer: dict) -> list[str]:
    f = answer["flags"]
    out = [f"unsupported number {n['text']!r}" for n in f["unsupported_numbers"]]
    out += [f"unsupported name {n['text']!r}" for n in f["unsupported_names"]]
    out += [f"weakly supported sentence ({s['support']:.2f})" for s in f["unsupported_sentences"]]
    out += [f"polarity flip ({', '.join(p['detail'])})" for p in f["polarity_flips"]]
    out += [f"role flip ({' / '.join(r['answer'])} vs {' / '.join(r['evidence'])})" for r in f["role_flips"]]
    if answer["abstained"]:
        out.append("abstained")
    return out


def shown_models(q: dict) -> list[str]:
    """The models whose answer to question row `q` the answer lists show: `checked` only where the check
    withheld the tuned answer (elsewhere it is the same answer)."""
    return [m for m in MODELS if q.get(m) is not None
            and not (m == "checked" and q[m]["answer"] == q["tuned"]["answer"])]


def to_markdown(report: dict) -> str:
    lines = ["# groundtune evaluation", "",
             f"- model: `{report['model']}`", f"- base model: `{report['base_model']}`",
             f"- created: {report['created']}", f"- source sha256: `{report['source_sha256'][:16]}…`",
             f"- time: {report['timings_s'].get('total')} s",
             f"- `consistency` held-out ROC AUC on the hand-labelled set: {report['scorer']['heldout_auc']}",
             "", "## Summary", "", markdown_table(report), "", interval_table(report), "", "![metrics](metrics.png)",
             "", "## Answers"]
    for set_name in report["sets"]:
        lines += ["", f"### {set_name}"]
        for q in (q for q in report["questions"] if q["set"] == set_name):
            lines += ["", f"**{q['id']}: {q['question']}**", "", f"- reference: {q['reference']}"]
            for model in shown_models(q):
                a = q[model]
                hit = "" if a["key_fact_hit"] is None else f", key facts {'hit' if a['key_fact_hit'] else 'missed'}"
                flags = "; ".join(_flag_words(a)) or "no flags"
                lines.append(f"- {model} (consistency {a['consistency']:.2f}{hit}; {flags}): {a['answer']}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# HTML and plot


def _marked(answer: dict) -> str:
    """The answer as HTML with flagged numbers and names in <mark>."""
    text = answer["answer"]
    spans = sorted((s["start"], s["end"]) for key in ("unsupported_numbers", "unsupported_names")
                   for s in answer["flags"][key])
    out, pos = [], 0
    for start, end in spans:
        if start < pos:
            continue
        out += [html.escape(text[pos:start]), f"<mark>{html.escape(text[start:end])}</mark>"]
        pos = end
    out.append(html.escape(text[pos:]))
    return "".join(out)


def to_html(report: dict, plot_png: bytes | None) -> str:
    esc = html.escape
    head = ["set", "n", "model"] + [LABELS[m] for m in METRICS]
    table = "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in headline_rows(report)) + "</table>"
    img = (f'<img alt="metrics" src="data:image/png;base64,{base64.b64encode(plot_png).decode()}">'
           if plot_png else "")
    body = [f"<h1>groundtune evaluation</h1><p>model <code>{esc(report['model'])}</code>, base "
            f"<code>{esc(str(report['base_model']))}</code>, {esc(report['created'])}; "
            f"<code>consistency</code> held-out ROC AUC {esc(str(report['scorer']['heldout_auc']))}</p>",
            "<h2>Summary</h2>", table, img, "<h2>Answers</h2>"]
    for set_name in report["sets"]:
        body.append(f"<h3>{esc(set_name)}</h3><table><tr><th>question</th><th>reference</th><th>model</th>"
                    "<th>answer</th><th>consistency</th><th>key facts</th><th>flags</th></tr>")
        for q in (q for q in report["questions"] if q["set"] == set_name):
            models = shown_models(q)
            for i, model in enumerate(models):
                a = q[model]
                lead = (f'<td rowspan="{len(models)}">{esc(q["question"])}</td>'
                        f'<td rowspan="{len(models)}">{esc(q["reference"])}</td>') if i == 0 else ""
                hit = "–" if a["key_fact_hit"] is None else ("hit" if a["key_fact_hit"] else "missed")
                body.append(f"<tr>{lead}<td>{model}</td><td>{_marked(a)}</td><td>{a['consistency']:.2f}</td>"
                            f"<td>{hit}</td><td>{esc('; '.join(_flag_words(a)))}</td></tr>")
        body.append("</table>")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;font-size:0.9em}"
             "mark{background:#fbb}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>groundtune evaluation</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def plot_metrics(report: dict, path: Path) -> None:
    """One panel per metric: tuned (and checked) vs base for every question set where the metric applies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(report["sets"])
    models = [m for m in MODELS if report["metrics"].get(m)]
    rows = -(-len(METRICS) // 4)
    fig, axes = plt.subplots(rows, 4, figsize=(15, 2.7 * rows), dpi=100)
    for ax in axes.flat[len(METRICS):]:
        ax.axis("off")
    for ax, metric in zip(axes.flat, METRICS):
        width = 0.8 / len(models)
        for j, model in enumerate(models):
            values = [report["metrics"][model][s][metric] for s in sets]
            xs = [i + (j - (len(models) - 1) / 2) * width for i in range(len(sets))]
            ax.bar(xs, [v if v is not None else 0 for v in values], width, label=model,
                   color=COLORS[model])
        ax.set_title(LABELS[metric], fontsize=9)
        ax.set_xticks(range(len(sets)), sets, fontsize=8)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"groundtune evaluation: {' vs '.join(models)} per metric and question set", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: dict, out_dir: Path) -> Path:
    """Write the four files into a temporary folder next to `out_dir`, then swap it into place."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write_json(tmp / "report.json", report)
        (tmp / "report.md").write_text(to_markdown(report), encoding="utf-8")
        plot_metrics(report, tmp / "metrics.png")
        (tmp / "report.html").write_text(to_html(report, (tmp / "metrics.png").read_bytes()), encoding="utf-8")
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
