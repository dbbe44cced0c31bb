import json

import pytest

from conftest import cli_overrides, tiny_run_overrides
from groundtune.errors import GroundtuneError
from groundtune.kfold import split


def test_split_holds_out_every_kth_pair_once():
    assert split(9, 3) == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    assert sorted(i for fold in split(7, 2) for i in fold) == list(range(7))
    for k in (1, 10):
        with pytest.raises(GroundtuneError, match="--folds must be between 2 and the number of pairs"):
            split(9, k)


def test_kfold_never_trains_on_a_held_out_question(tiny_model_dir, tmp_path, capsys):
    import datasets

    from groundtune.cli import main
    from groundtune.readers import normalize_question

    out = tmp_path / "kfold"
    overrides = tiny_run_overrides(tiny_model_dir, tmp_path / "ignored", **{"eval.max_new_tokens": 4})
    assert main(["kfold", "--folds", "2", "--out", str(out), *cli_overrides(overrides)]) == 0
    summary = json.loads((out / "kfold.json").read_text())
    assert [r["held_out"] for r in summary["results"]] == [[1, 3, 5, 7, 9], [2, 4, 6, 8]]
    for r in summary["results"]:
        assert r["n"] == {"train": 9 - len(r["held_out"]), "heldout": len(r["held_out"])}
        assert set(r["metrics"]) == {"tuned", "checked", "base"}  # checked: the tuned answers after the source check
        held = [json.loads(line)["question"] for line in (out / "data" / f"fold{r['fold']}" / "heldout.jsonl").open()]
        trained = datasets.load_from_disk(str(out / "runs" / f"fold{r['fold']}" / "dataset"))["train"]["question"]
        seen = {normalize_question(q) for q in trained}
        assert held and not any(normalize_question(q) in seen for q in held)
        assert not any(q.lower().rstrip("?") in t.lower() for q in held for t in trained)  # nor a reworded copy
    recall = [(r["metrics"]["tuned"]["heldout"]["token_recall"], r["n"]["heldout"]) for r in summary["results"]]
    assert summary["mean"]["tuned"]["heldout"]["token_recall"] == pytest.approx(
        sum(v * n for v, n in recall) / 9, abs=1e-4)
    table = (out / "kfold.md").read_text()
    assert "| mean | all | tuned | heldout |" in table and "| 2 | 2, 4, 6, 8 | base | heldout |" in table
    assert "| mean | all | checked | heldout |" in table
    assert "[kfold] fold 2/2: holding out pair(s) 2, 4, 6, 8" in capsys.readouterr().out


def test_kfold_refuses_before_training_when_a_fold_folder_exists(tiny_model_dir, tmp_path, capsys):
    from groundtune.cli import main

    out = tmp_path / "kfold"
    (out / "runs" / "fold2").mkdir(parents=True)
    overrides = tiny_run_overrides(tiny_model_dir, tmp_path / "ignored")
    assert main(["kfold", "--folds", "2", "--out", str(out), *cli_overrides(overrides)]) != 0
    assert "fold2" in capsys.readouterr().err and not (out / "runs" / "fold1").exists()


def test_kfold_only_runs_the_listed_folds(tiny_model_dir, tmp_path):
    from groundtune.cli import main

    out = tmp_path / "kfold"
    overrides = tiny_run_overrides(tiny_model_dir, tmp_path / "ignored", **{"eval.max_new_tokens": 4})
    assert main(["kfold", "--folds", "3", "--only", "2", "--out", str(out), *cli_overrides(overrides)]) == 0
    summary = json.loads((out / "kfold.json").read_text())
    assert [(r["fold"], r["held_out"]) for r in summary["results"]] == [(2, [2, 5, 8])] and summary["only"] == [2]
    assert not (out / "runs" / "fold1").exists() and not (out / "runs" / "fold3").exists()
    assert summary["mean"]["tuned"]["heldout"]["token_recall"] == pytest.approx(
        summary["results"][0]["metrics"]["tuned"]["heldout"]["token_recall"], abs=1e-4), "the mean of fold 2 alone"
    table = (out / "kfold.md").read_text()
    assert "`groundtune kfold --folds 3 --only 2`" in table and "| mean | folds 2 | tuned | heldout |" in table
    assert main(["kfold", "--folds", "3", "--only", "4", "--out", str(tmp_path / "k2"), *cli_overrides(overrides)]) != 0
