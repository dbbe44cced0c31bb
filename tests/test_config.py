from pathlib import Path

import pytest

from groundtune.config import RunConfig, describe, field_docs, load_config, parse_overrides
from groundtune.errors import GroundtuneError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.yaml") if not {"accelerate", "ablation"} & set(p.parts))
PLANS = sorted((REPO / "configs" / "ablation").glob("*.yaml"))


def test_there_are_configs():
    assert any(p.name == "smollm2-135m-cpu.yaml" for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_config_validates(path):
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)
    first = path.read_text().splitlines()[0]
    assert first.startswith("#"), "each config starts with a comment giving the command that runs it"


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_every_ablation_plan_validates(path):
    from groundtune.ablate import read_plan

    base, rows = read_plan(path)
    assert (REPO / base).is_file() and len(rows) >= 2


def test_ablation_plan_with_a_bad_override_names_the_row(tmp_path):
    from groundtune.ablate import read_plan

    plan = tmp_path / "plan.yaml"
    plan.write_text(f"base: {REPO / 'configs/smollm2-135m-cpu.yaml'}\nrows:\n  - name: ok\n  - name: bad\n"
                    "    overrides: {train.epoch: 2}\n")
    with pytest.raises(GroundtuneError, match=r"plan.yaml:2: row 2 \(bad\): --train.epoch: unknown config key"):
        read_plan(plan)


def test_ablation_rows_keep_only_results_whose_config_is_unchanged(tmp_path):
    import json

    from groundtune.ablate import earlier_results, place, read_plan
    from groundtune.config import dump_yaml

    plan = tmp_path / "plan.yaml"
    plan.write_text(f"base: {REPO / 'configs/smollm2-135m-cpu.yaml'}\nrows:\n  - name: one\n"
                    "    overrides: {train.epochs: 2}\n  - name: two\n  - name: three\n")
    _, rows = read_plan(plan)
    out = tmp_path / "ablation"
    for n, row in enumerate(rows, start=1):  # what an earlier complete ablation left
        (out / "runs" / f"row{n}").mkdir(parents=True)
        place(row.config, out, n)
        dump_yaml(row.config, out / "runs" / f"row{n}" / "config.yaml")
    old = [{"name": "base", "train_s": None, "metrics": {"dev": {"x": 0.1}}}] + [
        {"name": f"old {n}", "overrides": {}, "train_s": 10.0 * n, "metrics": {"dev": {"x": n}}} for n in (1, 2, 3)]
    (out / "ablation.json").write_text(json.dumps({"rows": old}))
    _, rows = read_plan(plan)
    kept = earlier_results(out, rows, selected=[3])
    assert sorted(kept) == [0, 1, 2] and kept[1]["metrics"] == {"dev": {"x": 1}} and kept[2]["name"] == "two"
    assert sorted(earlier_results(out, rows, selected=[1])) == [2, 3]  # row 1 reruns, and so does the base row
    plan.write_text(plan.read_text().replace("train.epochs: 2", "train.epochs: 3"))
    _, rows = read_plan(plan)
    with pytest.raises(GroundtuneError, match=r"row 1 \(one\) changed since it was measured; run it too"):
        earlier_results(out, rows, selected=[3])
    assert sorted(earlier_results(out, rows, selected=[1, 3])) == [2]
    plan.write_text(plan.read_text().replace("name: two\n", "name: two\n    overrides: {train.prefix_reuse: false}\n"))
    _, rows = read_plan(plan)  # a speed-only setting is not a change
    assert rows[1].config.train.prefix_reuse is False and sorted(earlier_results(out, rows, selected=[1, 3])) == [2]


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_unknown_key_names_file_line_and_suggests(tmp_path):
    p = write(tmp_path, "run_name: x\ntrain:\n  epochs: 2\n  learnig_rate: 0.1\n")
    with pytest.raises(GroundtuneError) as e:
        load_config(p)
    assert str(e.value) == f"{p}:4: train.learnig_rate: unknown config key (did you mean 'train.learning_rate'?)"


def test_unknown_top_level_section(tmp_path):
    with pytest.raises(GroundtuneError, match=r"c.yaml:1: trian: unknown config key \(did you mean 'train'\?\)"):
        load_config(write(tmp_path, "trian:\n  epochs: 1\n"))


def test_negative_learning_rate_points_at_line(tmp_path):
    p = write(tmp_path, "train:\n  learning_rate: -0.1\n")
    with pytest.raises(GroundtuneError, match=r"c.yaml:2: train.learning_rate: must be > 0"):
        load_config(p)


def test_wrong_type(tmp_path):
    with pytest.raises(GroundtuneError, match=r"c.yaml:2: lora.r: expected an integer, got 'sixteen'"):
        load_config(write(tmp_path, "lora:\n  r: sixteen\n"))


def test_bool_is_not_an_int(tmp_path):
    with pytest.raises(GroundtuneError, match="expected an integer"):
        load_config(write(tmp_path, "lora:\n  r: true\n"))


def test_literal_choices(tmp_path):
    with pytest.raises(GroundtuneError, match="must be one of auto, cpu, cuda, mps"):
        load_config(write(tmp_path, "model:\n  device: tpu\n"))


def test_int_accepted_for_float(tmp_path):
    assert load_config(write(tmp_path, "train:\n  learning_rate: 1\n")).train.learning_rate == 1.0


def test_exponent_without_a_dot_is_a_number_in_files_and_overrides(tmp_path):
    # PyYAML (YAML 1.1) reads 5e-4 as the string '5e-4'; a float field takes it as the number
    assert load_config(write(tmp_path, "train:\n  learning_rate: 2e-4\n")).train.learning_rate == 2e-4
    assert load_config(None, ["--train.learning_rate", "5e-4"]).train.learning_rate == 5e-4
    assert load_config(None, ["--train.learning_rate=1E-3"]).train.learning_rate == 1e-3
    with pytest.raises(GroundtuneError, match=r"train.learning_rate: expected a number, got 'fast'"):
        load_config(None, ["--train.learning_rate", "fast"])
    with pytest.raises(GroundtuneError, match="expected an integer"):
        load_config(None, ["--lora.r", "1e2"])  # only float fields read exponents


def test_invalid_yaml_line(tmp_path):
    with pytest.raises(GroundtuneError, match=r"c.yaml:2: invalid YAML"):
        load_config(write(tmp_path, "train:\n\tepochs: 1\n"))


def test_not_a_mapping(tmp_path):
    with pytest.raises(GroundtuneError, match="must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_missing_config_file(tmp_path):
    with pytest.raises(GroundtuneError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_win_and_are_typed(tmp_path):
    p = write(tmp_path, "train:\n  epochs: 2\n")
    cfg = load_config(p, ["--train.epochs", "3", "--lora.r=8", "--lora.target_modules", "[q_proj, v_proj]"])
    assert cfg.train.epochs == 3 and cfg.lora.r == 8 and cfg.lora.target_modules == ["q_proj", "v_proj"]


def test_unknown_override_is_an_error():
    with pytest.raises(GroundtuneError, match=r"--train.epoch: unknown config key \(did you mean 'train.epochs'\?\)"):
        load_config(None, ["--train.epoch", "3"])


def test_bad_override_value_is_an_error():
    with pytest.raises(GroundtuneError, match=r"^--train.batch_size: must be >= 1$"):
        load_config(None, ["--train.batch_size", "0"])


def test_false_premise_details_are_named_from_a_fixed_list():
    cfg = load_config(None, ["--data.augment.false_premise_details", "[direction, country]"])
    assert cfg.data.augment.false_premise_details == ["direction", "country"]
    for bad in ("[nope]", "[]"):
        with pytest.raises(GroundtuneError, match=r"^--data.augment.false_premise_details: must be one or more of"):
            load_config(None, ["--data.augment.false_premise_details", bad])


def test_prefix_gradient_off_needs_a_shared_prefix():
    assert load_config(None, ["--train.prefix_gradient", "false"]).train.prefix_gradient is False
    with pytest.raises(GroundtuneError, match=r"^--train.prefix_gradient: false needs prefix_sharing true"):
        load_config(None, ["--train.prefix_gradient", "false", "--train.gradient_checkpointing", "true"])


def test_override_needs_value():
    with pytest.raises(GroundtuneError, match="needs a value"):
        parse_overrides(["--train.epochs"])


def test_every_field_is_documented():
    rows = describe(RunConfig)
    missing = [key for key, _, doc in rows if not doc]
    assert not missing, f"fields without a docstring: {missing}"
    assert field_docs(RunConfig)["seed"].startswith("Seed")


def test_code_defaults_are_the_measured_default_recipe():
    """A config file that leaves keys out gets the recipe the README measured (configs/smollm2-135m-cpu.yaml)."""
    from conftest import REPO

    code, measured = load_config(None), load_config(REPO / "configs" / "smollm2-135m-cpu.yaml")
    assert code.data.augment == measured.data.augment
    assert code.lora == measured.lora
    assert code.train == measured.train


def test_a_run_config_saved_before_a_key_existed_reads_as_it_was_trained(tmp_path):
    from groundtune.config import ADDED_LATER, dump_yaml, load_run_config, to_dict

    cfg = load_config(None)
    path = tmp_path / "config.yaml"
    dump_yaml(cfg, path)
    assert to_dict(load_run_config(path)) == to_dict(cfg)  # a current file: nothing changes
    added = tuple(key.rsplit(".", 1)[1] + ":" for key in ADDED_LATER)
    old = "\n".join(line for line in path.read_text().splitlines() if not line.strip().startswith(added))
    path.write_text(old + "\n")
    before = to_dict(load_run_config(path))
    for key, value in ADDED_LATER.items():
        node = before
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    assert ADDED_LATER["data.augment.keyword_questions"] != cfg.data.augment.keyword_questions  # why it matters
    assert load_run_config(path, {"data.augment.keyword_questions": 2}).data.augment.keyword_questions == 2
