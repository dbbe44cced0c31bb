import json

import pytest

from conftest import cli_overrides, tiny_run_overrides

SMALL = {"data.augment.seed_repeats": 1, "data.augment.question_variants": 0, "data.augment.passage_questions": False,
         "data.augment.abstention": 0, "eval.max_new_tokens": 4}


def test_seeds_trains_each_seed_and_reports_every_run_and_the_mean(tiny_model_dir, tmp_path, capsys):
    from safetensors.torch import load_file

    from groundtune.cli import main
    from groundtune.config import load_run_config

    out = tmp_path / "seeds"
    overrides = tiny_run_overrides(tiny_model_dir, tmp_path / "ignored", **SMALL)
    assert main(["seeds", "--seeds", "7", "8", "--out", str(out), *cli_overrides(overrides)]) == 0
    summary = json.loads((out / "seeds.json").read_text())
    assert [r["seed"] for r in summary["results"]] == [7, 8]
    for r in summary["results"]:
        run = out / "runs" / f"seed{r['seed']}"
        cfg = load_run_config(run / "config.yaml")
        assert (cfg.seed, cfg.eval.compare_base, cfg.data.augment.seed_repeats) == (r["seed"], False, 1)
        assert set(r["metrics"]) == {"train", "dev", "unanswerable"} and r["train_s"] > 0
        assert not (run / "model.safetensors").exists() and (run / "adapter" / "adapter_model.safetensors").is_file()
    a, b = (load_file(out / "runs" / f"seed{s}" / "adapter" / "adapter_model.safetensors") for s in (7, 8))
    assert any(not a[k].equal(b[k]) for k in a), "each seed trains its own adapter"
    values = [r["metrics"]["dev"]["mean_consistency"] for r in summary["results"]]
    assert summary["mean"]["metrics"]["dev"]["mean_consistency"] == pytest.approx(sum(values) / 2, abs=1e-4)
    table = (out / "seeds.md").read_text()
    assert "| 7 |" in table and "| 8 |" in table and "| mean |" in table
    assert "--data.augment.seed_repeats 1" in table.splitlines()[0], "the table says which recipe it measured"
    assert "[seeds] 2/2: seed 8" in capsys.readouterr().out


def test_seeds_keeps_the_weights_when_asked(tiny_model_dir, tmp_path):
    from groundtune.cli import main

    out = tmp_path / "seeds"
    overrides = tiny_run_overrides(tiny_model_dir, tmp_path / "ignored", **SMALL)
    assert main(["seeds", "--seeds", "3", "--keep-weights", "--out", str(out), *cli_overrides(overrides)]) == 0
    assert (out / "runs" / "seed3" / "model.safetensors").is_file()


@pytest.mark.parametrize("seeds, existing, message", [(["1", "1"], None, "distinct seeds"),
                                                      (["1", "2"], "seed2", "seed2")])
def test_seeds_refuses_before_training(tiny_model_dir, tmp_path, capsys, seeds, existing, message):
    from groundtune.cli import main

    out = tmp_path / "seeds"
    if existing:
        (out / "runs" / existing).mkdir(parents=True)
    overrides = tiny_run_overrides(tiny_model_dir, tmp_path / "ignored", **SMALL)
    assert main(["seeds", "--seeds", *seeds, "--out", str(out), *cli_overrides(overrides)]) != 0
    assert message in capsys.readouterr().err and not (out / "runs" / "seed1").exists()


def test_seeds_resume_reads_back_finished_seeds_and_trains_the_rest(tiny_model_dir, tmp_path, capsys, monkeypatch):
    """--resume: a seed evaluated earlier with the same config is read back, not trained again; the missing seed
    is trained; a seed trained with another config is an error naming its config.yaml, before anything trains."""
    import groundtune.run
    from groundtune.cli import main

    out = tmp_path / "seeds"
    args = cli_overrides(tiny_run_overrides(tiny_model_dir, tmp_path / "ignored", **SMALL))
    assert main(["seeds", "--seeds", "7", "--out", str(out), *args]) == 0
    first = json.loads((out / "seeds.json").read_text())["results"][0]
    trained, real_run = [], groundtune.run.run
    monkeypatch.setattr(groundtune.run, "run", lambda cfg, **kw: trained.append(cfg.seed) or real_run(cfg, **kw))
    assert main(["seeds", "--seeds", "7", "8", "--resume", "--out", str(out), *args]) == 0
    assert trained == [8]
    summary = json.loads((out / "seeds.json").read_text())
    assert [r["seed"] for r in summary["results"]] == [7, 8] and summary["results"][0]["metrics"] == first["metrics"]
    assert "seed 7 finished earlier, read back" in capsys.readouterr().out
    assert main(["seeds", "--seeds", "7", "9", "--resume", "--out", str(out), *args, "--train.epochs", "3"]) != 0
    assert "seed7/config.yaml: --resume: this seed was trained with another config" in capsys.readouterr().err
    assert trained == [8] and not (out / "runs" / "seed9").exists()
