"""The harness on the tiny model: question sets, key facts, aggregates, the three report files, the CLI,
`groundtune run` ending in an evaluation, and the data audit on the seed."""

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from groundtune.cli import main
from groundtune.errors import GroundtuneError
from groundtune.evaluation.harness import METRICS, PROPORTIONS, aggregate, key_fact_hit, question_half, read_question_set
from groundtune.evaluation.report import MODELS, REPORT_FILES
from groundtune.source_check import SourceCheck

from conftest import SEED, load_script, tiny_run_overrides

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "tests" / "data" / "report_example.json"
DEV = [
    {"id": "dev-1", "question": "How many Patriot systems is Germany providing?",
     "answer": "Two additional Patriot missile systems.", "key_facts": [["two", "2"], ["Patriot"]]},
    {"id": "dev-2", "question": "By how much should air and missile defense grow?", "answer": "By 400%.",
     "key_facts": [["400%"]]},
    {"id": "dev-3", "question": "Which country could face U.S. secondary sanctions?", "answer": "China.",
     "key_facts": [["China"]]},
]
UNANSWERABLE = [
    {"id": "un-1", "question": "What is the price of oil?", "answer": "The source does not say.", "answerable": False},
    {"id": "un-2", "question": "When was NATO founded?", "answer": "The source does not say.", "answerable": False},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def cli_overrides(d: dict) -> list[str]:
    return [x for k, v in d.items() for x in (f"--{k}", json.dumps(v) if not isinstance(v, str) else v)]


@pytest.fixture(scope="module")
def question_sets(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("questions")
    return ["train", str(write_jsonl(folder / "dev.jsonl", DEV)),
            str(write_jsonl(folder / "unanswerable.jsonl", UNANSWERABLE))]


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, tmp_path_factory, question_sets) -> Path:
    """`groundtune run` on the tiny model: trains, then evaluates into <run>/eval."""
    out = tmp_path_factory.mktemp("outputs")
    overrides = tiny_run_overrides(tiny_model_dir, out, **{
        "eval.enabled": True, "eval.question_sets": question_sets, "eval.max_new_tokens": 8})
    assert main(["run", *cli_overrides(overrides)]) == 0
    return out / "tiny"


# --------------------------------------------------------------------------------------------------
# Key facts and aggregates


@pytest.mark.parametrize("answer, facts, hit", [
    ("Germany sends 2 Patriot systems.", [["two", "2"], ["Patriot"]], True),
    ("Germany sends two  PATRIOT systems.", [["2"], ["patriot"]], True),
    ("A 400 percent increase.", [["400%"]], True),
    ("A four hundred percent increase.", [["400%"]], True),
    ("Germany sends three Patriot systems.", [["two", "2"], ["Patriot"]], False),
    ("Two systems.", [], None),
])
def test_key_fact_hit_normalises_case_spacing_and_numbers(answer, facts, hit):
    assert key_fact_hit(answer, facts) is hit


def test_aggregate_rates():
    from groundtune.evaluation.harness import Question

    qs = [Question("s", "1", "q", "r", True, [["a"]]), Question("s", "2", "q", "r", True, [["b"]]),
          Question("s", "3", "q", "r", False), Question("s", "4", "q", "r", False)]
    flags = {"unsupported_numbers": [], "unsupported_names": []}

    def res(hit, abstained, consistency, numbers=()):
        return {"key_fact_hit": hit, "abstained": abstained, "consistency": consistency,
                "signals": {"token_recall": 0.5, "token_f1": 0.5, "rougeL": 0.5},
                "flags": {**flags, "unsupported_numbers": list(numbers)}}

    m = aggregate(qs, [res(True, False, 1.0), res(False, True, 0.0, [{"text": "3"}]), res(None, True, 1.0),
                       res(None, False, 0.0)])
    assert m == {"key_fact_accuracy": 0.5, "abstention_rate": 0.5, "refusal_rate": 0.5, "unsupported_rate": 0.25,
                 "mean_consistency": 0.5, "token_recall": 0.5, "token_f1": 0.5, "rougeL": 0.5, "abstention_auroc": None,
                 "yes_no_accuracy": None}
    with_yes_no = [dict(res(True, False, 1.0), yes_no=True), dict(res(True, False, 1.0), yes_no=False),
                   res(None, True, 1.0), dict(res(None, False, 0.0), yes_no=True)]  # unanswerable ones do not count
    assert aggregate(qs, with_yes_no)["yes_no_accuracy"] == 0.5


def test_wilson_intervals_of_the_shares():
    from groundtune.evaluation.harness import Question, intervals, wilson

    assert wilson(34, 48) == [0.5682, 0.8176] and wilson(0, 19) == [0.0, 0.1682] and wilson(19, 19) == [0.8318, 1.0]
    assert wilson(0, 0) is None
    lo, hi = wilson(13, 19)
    assert lo < 13 / 19 < hi and hi - lo > wilson(130, 190)[1] - wilson(130, 190)[0], "fewer questions, wider"
    qs = [Question("s", "1", "q", "r", True, [["a"]]), Question("s", "2", "q", "r", True, [["b"]]),
          Question("s", "3", "q", "r", False)]
    flags = {"unsupported_numbers": [], "unsupported_names": []}
    res = [{"key_fact_hit": True, "abstained": False, "flags": flags}, {"key_fact_hit": None, "abstained": True,
           "flags": flags}, {"key_fact_hit": None, "abstained": True, "flags": {**flags, "unsupported_names": ["X"]}}]
    got = intervals(qs, res)
    assert got["key_fact_accuracy"] == {"low": wilson(1, 1)[0], "high": 1.0, "n": 1}, "a question without key facts is not counted"
    assert got["refusal_rate"]["n"] == 2 and got["abstention_rate"]["n"] == 1 and got["unsupported_rate"]["n"] == 3
    assert got["yes_no_accuracy"] is None


def test_yes_no_agreement_needs_the_references_opening_word():
    from groundtune.evaluation.harness import yes_no_agrees

    ref = "No. He advocated a 400% increase in air and missile defense."
    assert yes_no_agrees("No. Rutte advocated a 400% increase.", ref) is True
    assert yes_no_agrees("Yes. Rutte underlined ... advocating a 400% increase.", ref) is False  # key facts hit, still wrong
    assert yes_no_agrees("Rutte advocated a 400% increase.", ref) is False  # neither word: not an answer to yes/no
    assert yes_no_agrees("Nobody knows.", ref) is False  # "No" must be a word
    assert yes_no_agrees("yes, it is", "Yes. China is named.") is True
    assert yes_no_agrees("Yes.", "Sustained: he endorses sustained support.") is None  # not a yes/no reference


def test_abstention_auroc_ranks_unanswerable_against_other_sets_answerable():
    from groundtune.evaluation.harness import Question, abstention_auroc, abstention_opening

    qs = [Question("train", "t", "q", "r", True), Question("dev", "d1", "q", "r", True),
          Question("dev", "d2", "q", "r", True), Question("unans", "u1", "q", "r", False),
          Question("unans", "u2", "q", "r", False)]
    lp = lambda *v: [{"abstain_logprob": x} for x in v]  # noqa: E731
    assert abstention_auroc(qs, lp(0.0, -5, -3, -1, -2), "unans") == 1.0  # the trained question is left out
    assert abstention_auroc(qs, lp(0.0, -1, -3, -2, -4), "unans") == 0.25
    assert abstention_auroc(qs, lp(0.0, -1, -1, -1, -1), "unans") == 0.5
    assert abstention_auroc(qs, lp(0.0, -1, -1, -1, -1), "dev") is None  # no unanswerable question there
    assert abstention_opening("The source does not say.") == "The source does not say"
    assert abstention_opening("Not in the text; sorry") == "Not in the text"


def test_question_set_errors_name_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [DEV[0], {**DEV[1], "key_facts": ["400%"]}])
    with pytest.raises(GroundtuneError) as e:
        read_question_set(path)
    assert str(e.value) == f"{path}:2: field 'key_facts' must be a list of lists of alternative strings"


# --------------------------------------------------------------------------------------------------
# Reports


def test_run_ends_with_an_evaluation_report(tiny_run, capsys):
    assert sorted(p.name for p in (tiny_run / "eval").iterdir()) == sorted(REPORT_FILES)
    report = json.loads((tiny_run / "eval" / "report.json").read_text())
    assert list(report) == ["model", "base_model", "created", "source_sha256", "weights_sha256", "timings_s", "scorer",
                            "sets", "metrics", "intervals", "questions"]
    digest = hashlib.sha256((tiny_run / "model.safetensors").read_bytes()).hexdigest()
    assert report["weights_sha256"] == {"model.safetensors": digest}  # the merged weights the report measured
    for model in MODELS:  # a 95% interval around every share of questions, over the questions it counts
        for set_name, bounds in report["intervals"][model].items():
            assert list(bounds) == list(PROPORTIONS)
            for metric, b in bounds.items():
                value = report["metrics"][model][set_name][metric]
                assert (b is None) == (value is None)
                assert b is None or (b["low"] <= value <= b["high"] and b["n"] >= 1)
    assert report["intervals"]["tuned"]["dev"]["key_fact_accuracy"]["n"] == 3
    assert report["intervals"]["tuned"]["unanswerable"]["abstention_rate"]["n"] == 2
    assert report["sets"] == {"train": {"n": 9, "answerable": 9}, "dev": {"n": 3, "answerable": 3},
                              "unanswerable": {"n": 2, "answerable": 0}}
    for model in MODELS:
        assert list(report["metrics"][model]) == ["train", "dev", "unanswerable"]
        assert all(list(m) == list(METRICS) for m in report["metrics"][model].values())
    assert report["metrics"]["tuned"]["unanswerable"]["key_fact_accuracy"] is None
    assert len(report["questions"]) == 14
    q = report["questions"][9]
    assert q["set"] == "dev" and q["key_facts"] == DEV[0]["key_facts"]
    assert set(q["tuned"]) == {"answer", "consistency", "signals", "flags", "key_fact_hit", "yes_no", "abstained",
                               "abstain_logprob"}
    for model in MODELS:  # a number for the set with unanswerable questions, null elsewhere
        auroc = [report["metrics"][model][s]["abstention_auroc"] for s in ("train", "dev", "unanswerable")]
        assert auroc[:2] == [None, None] and 0.0 <= auroc[2] <= 1.0
    assert q["base"] is not None and report["base_model"]
    check = SourceCheck.from_dir(tiny_run)  # `checked`: the tuned answers, withheld where the check flags them
    for row in report["questions"]:
        withheld = bool(check.flags(row["tuned"]["answer"], row["question"]))
        assert row["checked"]["answer"] == (check.abstain_answer if withheld else row["tuned"]["answer"])
        assert row["checked"]["abstained"] or not withheld
        assert row["checked"]["abstain_logprob"] == row["tuned"]["abstain_logprob"]
    assert "train" in (tiny_run / "eval" / "report.md").read_text()
    assert "95% intervals (Wilson)" in (tiny_run / "eval" / "report.md").read_text()
    html = (tiny_run / "eval" / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "data:image/png;base64," in html
    if os.environ.get("GROUNDTUNE_WRITE_REPORT_EXAMPLE") == "1":  # refresh the example others test against
        EXAMPLE.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def _shape(obj):
    """The key structure of a JSON value (dict keys recursively; list items merged)."""
    if isinstance(obj, dict):
        return {k: _shape(v) for k, v in obj.items() if k not in ("signals",)}
    if isinstance(obj, list):
        return [_shape(obj[0])] if obj and isinstance(obj[0], dict) else []
    return None


def test_report_example_has_the_shape_of_a_real_report(tiny_run):
    fresh = json.loads((tiny_run / "eval" / "report.json").read_text())
    assert _shape(json.loads(EXAMPLE.read_text())) == _shape(fresh), \
        "tests/data/report_example.json is stale: GROUNDTUNE_WRITE_REPORT_EXAMPLE=1 pytest tests/test_harness.py"


def test_eval_cli_writes_the_report_where_asked(tiny_run, question_sets, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["eval", "--model", str(tiny_run), "--out", str(out), "--questions", question_sets[1],
                 "--max-new-tokens", "4"])
    assert code == 0 and sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    report = json.loads((out / "report.json").read_text())
    assert list(report["sets"]) == ["dev"] and report["metrics"]["base"] is None and report["base_model"] is None
    assert "key-fact accuracy" in capsys.readouterr().out


def test_checked_answers_withhold_invented_details_and_keep_the_rest(tiny_run, question_sets, tmp_path, monkeypatch):
    """`checked` in a report: the tuned answers with those naming what the passage and the user's answers lack
    replaced by the abstention answer (answers fixed here, so the test does not hang on what a tiny model says)."""
    from groundtune.evaluation import harness

    given = ["Germany is providing two additional Patriot missile systems.",  # supported
             "By 400%, which Rutte announced in Vilnius in 2019.",             # a name and a year nowhere
             "The source does not say; it does not mention Japan."]           # already abstains: kept
    monkeypatch.setattr(harness, "answer_tuned", lambda *a, **k: (list(given), [-1.0, -2.0, -0.5]))
    report = harness.evaluate_model(tiny_run, tmp_path / "r", question_sets=[question_sets[1]], compare_base=False)
    checked = [q["checked"] for q in report["questions"]]
    assert [c["answer"] for c in checked] == [given[0], SourceCheck.from_dir(tiny_run).abstain_answer, given[2]]
    assert [c["abstain_logprob"] for c in checked] == [-1.0, -2.0, -0.5]
    assert report["metrics"]["tuned"]["dev"]["refusal_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert report["metrics"]["checked"]["dev"]["refusal_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert report["metrics"]["checked"]["dev"]["unsupported_rate"] < report["metrics"]["tuned"]["dev"]["unsupported_rate"]
    md = (tmp_path / "r" / "report.md").read_text()
    assert md.count("- checked (") == 1  # the answer lists show `checked` only where it differs
    off = harness.evaluate_model(tiny_run, tmp_path / "off", question_sets=[question_sets[1]], compare_base=False,
                                 cfg=harness.EvalConfig(source_check=False))
    assert off["metrics"]["checked"] is None and off["questions"][0]["checked"] is None


def test_eval_cli_missing_model_is_one_line(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["eval", "--model", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"groundtune: error: {missing}: model folder not found"


def test_eval_of_a_plain_model_folder_needs_a_source(tiny_model_dir, question_sets, tmp_path, capsys):
    assert main(["eval", "--model", str(tiny_model_dir), "--out", str(tmp_path / "r"),
                 "--questions", question_sets[1]]) == 2
    assert "pass --source PASSAGE.txt" in capsys.readouterr().err


def test_eval_of_a_downloaded_repository_reads_passage_and_check_from_its_source_check_file(
        tiny_run, tiny_model_dir, question_sets, tmp_path, monkeypatch):
    """A published model folder (no config.yaml, no dataset/) carries groundtune/source_check.json: the harness
    takes its passage from there (no --source) and checks answers against its user answers too."""
    from groundtune.evaluation import harness
    from groundtune.source_check import FILE

    folder = shutil.copytree(tiny_model_dir, tmp_path / "downloaded")
    (folder / "groundtune").mkdir()
    shutil.copy2(tiny_run / FILE, folder / "groundtune" / FILE)
    check = SourceCheck.from_dir(tiny_run)
    given = ["All 32 NATO member countries agreed.", "In Vilnius.", "The source does not say."]  # 32: a user answer
    monkeypatch.setattr(harness, "answer_tuned", lambda *a, **k: (list(given), [-1.0, -2.0, -0.5]))
    report = harness.evaluate_model(folder, tmp_path / "r", question_sets=[question_sets[1]], compare_base=False)
    assert report["source_sha256"] == hashlib.sha256(check.source.encode()).hexdigest()
    assert [q["checked"]["answer"] for q in report["questions"]] == [given[0], check.abstain_answer, given[2]]


# --------------------------------------------------------------------------------------------------
# Audit


def test_audit_flags_what_the_seed_answers_add_to_the_passage(capsys):
    from groundtune.evaluation.audit import audit_pairs
    from groundtune.readers import read_seed

    findings = audit_pairs(read_seed(SEED))
    json.dumps(findings)  # serialisable for the publish step
    names = {s["text"] for f in findings for s in f["unsupported_names"]}
    numbers = {s["text"] for f in findings for s in f["unsupported_numbers"]}
    assert {"Brazil", "India", "Taiwan", "White House", "President Donald Trump"} <= names
    assert numbers == {"32"}
    assert not names & {"Rutte", "Mark Rutte", "Ukraine", "Germany", "China", "Russia"}


def test_audit_cli_exits_zero_and_prints_spans(capsys):
    assert main(["audit", "--data", str(SEED)]) == 0
    out = capsys.readouterr().out
    assert "name not in the passage: 'Brazil'" in out and "number not in the passage: '32'" in out


def test_abstention_threshold_reports_the_refusals_a_target_costs(tmp_path, capsys):
    """scripts/abstention_threshold.py: the highest threshold reaching the target, the answerable share at or
    above it, an ROC from (0, 0) to (1, 1); end to end on a stored report, with its plot."""
    script = load_script("abstention_threshold")
    pos, neg = [-0.1, -1.0, -3.0, -5.0], [-0.5, -4.0, -6.0, -8.0]
    assert script.refusals_at(pos, neg, 0.75) == (-3.0, 0.75, 0.25)
    assert script.refusals_at(pos, neg, 0.5) == (-1.0, 0.5, 0.25)
    assert script.refusals_at(pos, neg, 1.0) == (-5.0, 1.0, 0.5)
    xs, ys = script.roc(pos, neg)
    assert (xs[0], ys[0], xs[-1], ys[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert xs == sorted(xs) and ys == sorted(ys)
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    report = json.loads(EXAMPLE.read_text())
    (run / "eval" / "report.json").write_text(json.dumps(report))
    script.main([str(run), "--out", str(tmp_path / "roc.png")])
    out = capsys.readouterr().out
    pos, neg = script.scores(report)
    assert len(pos) == 2 and len(neg) == 3, "the trained pairs are not counted as answerable"
    t, abstained, refused = script.refusals_at(pos, neg, 0.8)
    refusal, abstention = script.generated_point(report)  # over the curve's questions: here dev is all of them
    assert {q["set"] for q in report["questions"] if q["answerable"] and q["set"] != "train"} == {"dev"}
    assert (refusal, abstention) == (report["metrics"]["tuned"]["dev"]["refusal_rate"],
                                     report["metrics"]["tuned"]["unanswerable"]["abstention_rate"])
    assert f"| run | {refusal:.2f} | {abstention:.2f} |" in out
    assert f"| {t:.2f} | {abstained:.2f} | {refused:.2f} |" in out
    assert (tmp_path / "roc.png").stat().st_size > 0
    with pytest.raises(SystemExit, match=re.escape(f"{tmp_path / 'none' / 'eval' / 'report.json'}: no evaluation report")):
        script.main([str(run), str(tmp_path / "none")])
    assert capsys.readouterr().out == "", "nothing printed before every report is read"


def test_abstention_threshold_halves_set_the_threshold_on_one_half_and_apply_it_to_the_other(tmp_path, capsys):
    """scripts/abstention_threshold.py --halves: a threshold set on one half's unanswerable questions (as
    `refusals_at` sets it), then counted on the other half, both ways."""
    script = load_script("abstention_threshold")
    ids = [f"q{i}" for i in range(40)]
    first, second = [i for i in ids if question_half(i) == 0], [i for i in ids if question_half(i) == 1]
    rows = {0: ([-1.0, -2.0], [-3.0]), 1: ([-0.5, -4.0], [-1.5, -5.0])}  # half: (unanswerable, answerable) scores

    def q(qid, answerable, lp):
        return {"id": qid, "set": "dev" if answerable else "unanswerable", "answerable": answerable,
                "tuned": {"abstain_logprob": lp, "abstained": False}}
    questions = [q(pool.pop(), answerable, lp) for h, pool in ((0, first), (1, second))
                 for answerable, scores in ((False, rows[h][0]), (True, rows[h][1])) for lp in scores]
    report = {"questions": questions + [q("t", True, 0.0) | {"set": "train"}]}  # a trained pair counts in neither
    assert script.transferred(report, 1.0) == [(-2.0, 0.5, 0.5), (-4.0, 1.0, 1.0)]
    assert script.transferred(report, 0.5) == [(-1.0, 0.5, 0.0), (-0.5, 0.0, 0.0)]
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    example = json.loads(EXAMPLE.read_text())
    (run / "eval" / "report.json").write_text(json.dumps({**example, "questions": questions}))
    script.main([str(run), "--halves", "--target", "1"])
    assert "| run | -2.00 | 0.50 | 0.50 | -4.00 | 1.00 | 1.00 |" in capsys.readouterr().out


def test_merge_scale_script_reproduces_the_run_at_its_own_scale_and_changes_it_at_another(tiny_run, tmp_path, capsys):
    """scripts/merge_scale.py: the run's adapter re-merged at the run's own lora.merge_scale (the default, 1.25)
    answers exactly as the run did; at 2 (relative to the update as trained) it differs; the merged weights are
    deleted; the per-half means are the harness's metrics on those questions."""
    from groundtune.config import load_run_config

    script = load_script("merge_scale")
    assert load_run_config(tiny_run / "config.yaml").lora.merge_scale == 1.25
    out = tmp_path / "ms"
    script.main([str(tiny_run), "--scales", "1.25", "2", "--out", str(out), "--halves"])
    run_report = json.loads((tiny_run / "eval" / "report.json").read_text())
    own, other = (json.loads((out / f"{tiny_run.name}-x{x}" / "eval" / "report.json").read_text()) for x in ("1.25", "2"))
    assert [q["tuned"]["answer"] for q in own["questions"]] == [q["tuned"]["answer"] for q in run_report["questions"]]
    assert [q["tuned"]["abstain_logprob"] for q in own["questions"]] == pytest.approx(
        [q["tuned"]["abstain_logprob"] for q in run_report["questions"]], abs=1e-3)
    assert [q["tuned"]["abstain_logprob"] for q in other["questions"]] != pytest.approx(
        [q["tuned"]["abstain_logprob"] for q in run_report["questions"]], abs=1e-3)
    assert not list(out.glob("*/model.safetensors"))
    assert load_run_config(out / f"{tiny_run.name}-x2" / "config.yaml").lora.merge_scale == 2  # what its weights are
    everything = script.metrics_on(run_report, lambda q: True)
    for set_name, metrics in everything.items():
        for metric, value in metrics.items():
            assert value == run_report["metrics"]["tuned"][set_name][metric], (set_name, metric)
    table = (out / "merge_scale.md").read_text()
    assert table.startswith(f"Measured with `scripts/merge_scale.py {tiny_run} --scales 1.25 2 --out {out} --halves`.")
    assert "| mean of 1 | 2 |" in table and "| mean, half 1 of the questions | 2 |" in table
    assert (out / "merge_scale.png").stat().st_size > 0
    saved = json.loads((out / "merge_scale.json").read_text())
    assert set(saved["means"]) == {"1.25", "2"} and set(saved["halves"]) == {"0", "1"}
    assert "written to" in capsys.readouterr().out
    fold_run = {"train": {"token_recall": 1.0}, "heldout": {"mean_consistency": 0.5, "refusal_rate": None}}
    assert [(s, k) for s, k, _ in script.used_columns([fold_run])] == [("train", "token_recall"),
                                                                        ("heldout", "mean_consistency")]


def test_merge_scale_script_names_runs_apart_and_reuses_only_the_same_runs_report(tmp_path, monkeypatch):
    """Two runs named seed43 (from two seeds series) get their series' name in front instead of sharing one cache
    folder; a cached report is reused only for the run it was made from (same manifest.json), and a retrained run
    of the same name is re-merged."""
    script = load_script("merge_scale")
    a, b = tmp_path / "sa" / "runs" / "seed43", tmp_path / "sb" / "runs" / "seed43"
    assert script.run_labels([a, b, tmp_path / "x"]) == ["sa-seed43", "sb-seed43", "x"]
    with pytest.raises(SystemExit, match="two runs would share"):
        script.run_labels([a, a])
    a.mkdir(parents=True)
    (a / "manifest.json").write_text('{"created": 1}')
    out = tmp_path / "out"
    cached = out / "sa-seed43-x1.25"
    (cached / "eval").mkdir(parents=True)
    (cached / "eval" / "report.json").write_text('{"cached": true}')
    (cached / "manifest.json").write_text('{"created": 1}')
    merged = []
    monkeypatch.setattr(script, "remerged_folder", lambda run, adapter, folder, scale, attention=None: merged.append(folder) or folder.mkdir(exist_ok=True))
    asked = []
    monkeypatch.setattr(script, "evaluate_model", lambda folder, out_dir, compare_base, question_sets:
                        asked.append((out_dir, question_sets)) or {"fresh": True})
    assert script.evaluate_scaled(a, "sa-seed43", 1.25, out) == {"cached": True} and not merged
    assert script.evaluate_scaled(a, "sa-seed43", 1.25, out, questions=["data/holdout.jsonl"]) == {"fresh": True}
    assert asked == [(cached / "eval-holdout", ["data/holdout.jsonl"])], "another question set: its own report folder"
    assert (cached / "eval" / "report.json").is_file(), "the run's own report stays beside it"
    (a / "manifest.json").write_text('{"created": 2}')  # trained again under the same name
    assert script.evaluate_scaled(a, "sa-seed43", 1.25, out) == {"fresh": True} and merged == [cached, cached]
    assert not (cached / "eval").exists()  # the stale report went with its folder
    metrics = {"train": {"token_recall": 1.0}, "holdout": {"key_fact_accuracy": 0.5, "abstention_rate": 0.25}}
    headers = [h for _, _, h in script.used_columns([metrics])]
    assert headers == ["train token recall", "holdout: key-fact acc.", "holdout: abstained"]


def test_dev_overlap_checks_its_inputs_before_printing_and_rescores_runs(tmp_path, capsys):
    """scripts/dev_overlap.py: a malformed question set or a missing report is a one-line error naming the
    file (and line), with nothing printed; a stored report is re-scored on all and on 'far' dev questions."""
    script = load_script("dev_overlap")
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "report.json").write_text(EXAMPLE.read_text())
    bad = tmp_path / "dev.jsonl"
    bad.write_text('{"id": "d1", "question": "Who?", "answer": "Rutte."}\n{"id": "d2", "question": \n')
    with pytest.raises(SystemExit, match=re.escape(f"{bad}:2")):
        script.main([str(run), "--set", str(bad)])
    with pytest.raises(SystemExit, match=re.escape(f"{tmp_path / 'none' / 'eval' / 'report.json'}: no evaluation report")):
        script.main([str(run), str(tmp_path / "none")])
    assert capsys.readouterr().out == "", "nothing printed before every input is read"
    script.main([str(run)])
    out = capsys.readouterr().out
    assert "of 48 questions of data/dev.jsonl have no training question" in out
    assert f"{run}: all (3 questions): key-fact accuracy" in out and f"{run}: far (" in out


def test_merge_scale_abstain_bias_lands_in_the_generation_config(tiny_run, tmp_path):
    """--abstain-bias writes save.abstention_bias for the folder's tokenizer and abstain answer into its
    generation_config.json, where transformers (so pipeline) and groundtune's Answerer both read it."""
    from transformers import GenerationConfig

    from groundtune.config import load_run_config
    from groundtune.model import load_tokenizer
    from groundtune.save import abstention_bias

    script = load_script("merge_scale")
    folder = tmp_path / "copy"
    shutil.copytree(tiny_run, folder, ignore=shutil.ignore_patterns("dataset", "adapter", "*.safetensors"))
    script.set_abstention_bias(folder, 1.5)
    tokenizer = load_tokenizer(str(folder))
    expected = abstention_bias(tokenizer, load_run_config(folder / "config.yaml").data.abstain_answer, 1.5)
    assert GenerationConfig.from_pretrained(folder).sequence_bias == expected
    assert script.folder_name("run", 1.25, None, 1.5) == "run-x1.25-bias1.5"
    assert "The source does not say.".startswith(tokenizer.decode(expected[0][0][-1:]))
