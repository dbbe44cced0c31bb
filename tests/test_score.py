"""consistency end to end: error types score below faithful answers, the abstention rule, the CLI, the
`evaluate` module, and the held-out AUC of the shipped weights (MiniLM is loaded once per module)."""

import json
from pathlib import Path

import numpy as np
import pytest

from groundtune.cli import main
from groundtune.evaluation import calibrate as cal
from groundtune.evaluation.score import WEIGHTS, Row, Scorer, load_weights

REPO = Path(__file__).resolve().parents[1]
LABELS = REPO / "tests" / "data" / "consistency_labels.jsonl"
SOURCE = ("Nordhavn Appliances is recalling about 220,000 KV-300 electric kettles sold in Denmark, Sweden and "
          "Norway after reports that the base can overheat. The company said it had received 57 complaints, "
          "including nine reports of minor burns, but no serious injuries. Chief executive Lars Engström "
          "apologised and said the fault had been traced to a thermostat supplied by a subcontractor in Poland.")
REFERENCE = "The company received 57 complaints, including nine reports of minor burns, and no serious injuries."
FAITHFUL = {
    "verbatim": "The company received 57 complaints, including nine reports of minor burns, and no serious injuries.",
    "paraphrase": "Fifty-seven complaints came in, nine of them about minor burns, and nobody was seriously hurt.",
}
WRONG = {
    "number": ("The company received 75 complaints, including nine reports of minor burns, and no serious injuries.",
               "unsupported_numbers", "75"),
    "entity": ("Chief executive Lars Jensen said the company received 57 complaints and no serious injuries.",
               "unsupported_names", "Lars Jensen"),
    "added": ("The company received 57 complaints and no serious injuries. It also paid 3 million euros in fines "
              "to Sweden and Finland.", "unsupported_numbers", "3 million"),
    "polarity": ("The company received 57 complaints, including nine reports of minor burns, and several serious "
                 "injuries.", None, None),
}


@pytest.fixture(scope="module")
def scorer():
    return Scorer()


def score_one(scorer, answer, reference=REFERENCE, source=SOURCE):
    return scorer.score([Row("x", answer, reference, source)])[0]


def test_every_error_type_scores_below_every_faithful_answer(scorer):
    faithful = {k: score_one(scorer, a)["consistency"] for k, a in FAITHFUL.items()}
    for kind, (answer, flag, span) in WRONG.items():
        result = score_one(scorer, answer)
        assert result["consistency"] < min(faithful.values()), (kind, result["consistency"], faithful)
        if flag:
            assert span in [s["text"] for s in result["flags"][flag]], (kind, result["flags"][flag])
    assert all(v > 0.5 for v in faithful.values()), faithful


def test_flags_point_at_the_words(scorer):
    answer = WRONG["number"][0]
    span = score_one(scorer, answer)["flags"]["unsupported_numbers"][0]
    assert answer[span["start"]:span["end"]] == "75"


def test_abstention_rule_and_empty_answer(scorer):
    not_said = "The passage does not say how many kettles were returned."
    both = score_one(scorer, "The source does not say.", reference=not_said)
    assert both["abstained"] and both["consistency"] == 1.0
    refusal = score_one(scorer, "The source does not say.")
    assert refusal["abstained"] and refusal["consistency"] == 0.0
    invented = score_one(scorer, "About 12,000 kettles were returned.", reference=not_said)
    assert not invented["abstained"] and invented["consistency"] == 0.0
    assert score_one(scorer, "  ")["consistency"] == 0.0


def test_output_row_has_every_signal_in_unit_range(scorer):
    result = score_one(scorer, FAITHFUL["paraphrase"])
    assert set(result) == {"id", "consistency", "abstained", "signals", "flags"}
    assert set(result["signals"]) == set(load_weights()["features"])
    assert all(0.0 <= v <= 1.0 for v in result["signals"].values())
    assert set(result["flags"]) == {"unsupported_numbers", "unsupported_names", "unsupported_sentences",
                                    "weakest_clause", "polarity_flips", "role_flips", "abstention"}


def test_score_cli_writes_one_line_per_row_with_the_shared_source(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": "a", "answer": FAITHFUL["verbatim"], "reference": REFERENCE}) + "\n"
                    + json.dumps({"id": "b", "answer": WRONG["number"][0], "reference": REFERENCE}) + "\n")
    (tmp_path / "p.txt").write_text(SOURCE)
    out = tmp_path / "scored.jsonl"
    assert main(["score", str(rows), "--source", str(tmp_path / "p.txt"), "--out", str(out)]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["id"] for g in got] == ["a", "b"] and got[0]["consistency"] > got[1]["consistency"]


def test_score_cli_bad_row_is_one_line_with_file_and_line(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": "a", "answer": "x", "reference": "y"}) + "\n" + json.dumps({"id": "b"}) + "\n")
    assert main(["score", str(rows)]) == 2
    assert capsys.readouterr().err.strip() == f"groundtune: error: {rows}:2: field 'answer' must be a string"


def test_evaluate_module_loads_offline_and_matches_the_scorer(scorer):
    import evaluate

    metric = evaluate.load(str(REPO / "metrics" / "groundtune_consistency"))
    answers = [FAITHFUL["paraphrase"], WRONG["entity"][0]]
    result = metric.compute(predictions=answers, references=[REFERENCE] * 2, sources=[SOURCE] * 2)
    direct = scorer.score([Row(str(i), a, REFERENCE, SOURCE) for i, a in enumerate(answers)])
    assert result["scores"] == [r["consistency"] for r in direct]
    assert result["consistency"] == pytest.approx(np.mean(result["scores"]))


def test_nli_slot_adds_a_signal_from_a_local_model(tmp_path, scorer):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from conftest import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, pad_token_id=tok.pad_token_id,
                         num_labels=3, id2label={0: "entailment", 1: "neutral", 2: "contradiction"},
                         label2id={"entailment": 0, "neutral": 1, "contradiction": 2})
    LlamaForSequenceClassification(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with_nli = Scorer(embedder=scorer.embedder, nli_model=tmp_path)
    result = with_nli.score([Row("x", FAITHFUL["verbatim"], REFERENCE, SOURCE)])[0]
    assert 0.0 < result["signals"]["nli"] < 1.0


# --------------------------------------------------------------------------------------------------
# The labelled set and the shipped weights


def test_split_is_stratified_deterministic_and_disjoint():
    rows = cal.read_labels(LABELS)
    calib, held = cal.split(rows)
    assert cal.split(list(reversed(rows))) == (calib, held)
    assert {r["id"] for r in calib}.isdisjoint({r["id"] for r in held}) and len(calib) + len(held) == len(rows)
    for category in {r["category"] for r in rows}:
        a = sum(r["category"] == category for r in calib)
        b = sum(r["category"] == category for r in held)
        assert a - b in (0, 1), category


def test_shipped_weights_were_fitted_on_the_labels_in_the_repo():
    import hashlib

    weights = json.loads(WEIGHTS.read_text())
    assert weights["labels_sha256"] == hashlib.sha256(LABELS.read_bytes()).hexdigest(), \
        "labels changed: rerun groundtune calibrate (see README, Evaluation)"
    assert all(c >= 0 for c in weights["coef"])


def test_heldout_auc_of_shipped_weights_is_at_least_085(scorer):
    """Recomputes consistency on the held-out half with the shipped weights (never fitted on it)."""
    from sklearn.metrics import roc_auc_score

    _, held = cal.split(cal.read_labels(LABELS))
    scored = scorer.signals(cal.label_rows(held))
    consistency = cal.columns(held, scored, load_weights())["consistency"]
    auc = roc_auc_score([r["label"] for r in held], consistency)
    assert auc >= 0.85, auc
    shipped = {r["signal"]: r["auc"] for r in load_weights()["heldout"]}["consistency"]
    assert auc == pytest.approx(shipped, abs=0.002), "weights.json's table is stale: rerun groundtune calibrate"
