"""Rounds of a search, Optuna's samplers and studies: every member a trial, read back with Optuna's
own API; a later run with more rounds continues the study; the same seed gives the same search;
a kill -9 mid-round resumes to the same results; bad input is one line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import search as search_cmd
from test_resume import EVERY, wait_for

optuna = pytest.importorskip("optuna")

# Lab A, tiny: 9 epochs give hyperband rungs 1, 3 and brackets of 9, 5 and 3 members
TINY = ["--n", "60", "--width", "8", "--depth", "2", "--lr", "1e-3..0.1", "--tolerance", "0", "--epochs", "9",
        "--checkpoint-every", "0", "--no-progress", "--no-tensorboard"]
STUDY = "laba"


def _search(out: Path, *args: str) -> None:
    assert search_cmd.main([*TINY, *args, "--out", str(out)]) == 0


def test_members_are_trials_read_back_with_optuna_and_a_second_run_continues_the_study(tmp_path):
    db = f"sqlite:///{tmp_path / 'study.db'}"
    out = tmp_path / "out"
    _search(out, "--sampler", "tpe", "--storage", db, "--study-name", STUDY)
    study = optuna.load_study(study_name=STUDY, storage=db)
    trials = study.get_trials()
    res = json.loads((out / "results.json").read_text())
    assert len(trials) == 17 and [b["members"] for b in res["brackets"]] == [list(range(9)), list(range(9, 14)),
                                                                             [14, 15, 16]]
    by_member = {t.user_attrs["member"]: t for t in trials}
    for m in res["members"]:
        t = by_member[m["member"]]
        assert t.state == (optuna.trial.TrialState.PRUNED if m["status"] == "pruned" else
                           optuna.trial.TrialState.COMPLETE), m
        # the validation metric by epoch up to the member's stop; a pruned member's value is its rung's
        assert sorted(t.intermediate_values) == list(range(1, m["epochs_trained"] + 1))
        last = t.intermediate_values[m["epochs_trained"]]
        assert t.value == (last if m["status"] == "pruned" else pytest.approx(m["val_mse"]))
        assert (t.user_attrs["bracket"], t.user_attrs["seed"], t.user_attrs["round"]) == (m["bracket"], m["seed"], 0)
        assert t.params["lr"] == pytest.approx(m["lr"])
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 1 + 1 + 3  # each bracket's finalists

    _search(out, "--sampler", "tpe", "--storage", db, "--study-name", STUDY, "--rounds", "2")
    trials = optuna.load_study(study_name=STUDY, storage=db).get_trials()
    assert len(trials) == 34 and sorted({t.user_attrs["round"] for t in trials}) == [0, 1]
    res = json.loads((out / "results.json").read_text())
    assert [r["round"] for r in res["rounds"]] == [0, 1] and res["winner"]["round"] in (0, 1)
    assert "# Rounds of a search" in (out / "report.md").read_text()
    second = [t.params["lr"] for t in trials if t.user_attrs["round"] == 1]
    # TPE's points, not the Halton sequence's continuation, and the same from a straight two-round run
    assert second != pytest.approx(_halton_continued(17), rel=1e-3)
    straight = tmp_path / "straight"
    _search(straight, "--sampler", "tpe", "--rounds", "2")
    again = json.loads((straight / "rounds.json").read_text())["trials"][17:]
    assert [t["params"]["lr"] for t in again] == pytest.approx(second, rel=1e-6)


def _halton_continued(n: int) -> list[float]:
    """The learning rates a second Halton round of ``n`` would train (seed 0)."""
    from jaxlabs.options import by_name
    from jaxlabs.search import parse_dimension, sample, search_space
    from jaxlabs.tasks import get_task

    task = get_task("fit-log2cos")
    space = search_space(task.options, {"lr": parse_dimension(by_name(task.options)["lr"], "1e-3..0.1")})
    return [float(p["lr"]) for p in sample(space, 2 * n, 0)[n:]]


@pytest.mark.parametrize("args, flag, words", [
    (["--rounds", "0"], "--rounds", "at least one round"),
    (["--sampler", "tpe", "--method", "pbt", "--members", "4"], "--sampler", "PBT"),
    (["--storage", "sqlite:////nonexistent-folder/x/study.db"], "--storage", "cannot open"),
    (["--storage", "nosuchdb://x"], "--storage", "cannot open"),
])
def test_bad_rounds_samplers_and_storages_are_one_line(tmp_path, capsys, args, flag, words):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        search_cmd.main([*TINY, *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert flag in err and words in err, err
    assert not out.exists()


def test_a_sampler_without_optuna_names_the_extra_and_a_study_of_another_space_the_difference(
        tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "optuna", None)  # as if it were not installed
        with pytest.raises(SystemExit) as stop:
            search_cmd.main([*TINY, "--sampler", "tpe", "--out", str(out)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "jaxlabs[search]" in err and len(err.strip().splitlines()) == 1, err
    db = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name=STUDY, storage=db)
    study.set_user_attr("jaxlabs_space", [{"name": "lr", "low": 0.01, "high": 1.0, "log": True, "values": []}])
    with pytest.raises(SystemExit) as stop:
        search_cmd.main([*TINY, "--storage", db, "--study-name", STUDY, "--out", str(out)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "lr 0.01..1 there, 0.001..0.1 here" in err, err
    assert not out.exists()


def _round_saved(out: Path, r: int) -> bool:
    steps = (out / ".checkpoint" / f"round-{r}" / "run").glob("*")
    return any(p.name.isdigit() and (p / "position").is_dir() for p in steps)  # a step orbax has committed


def test_a_search_killed_mid_round_resumes_to_the_same_results(tmp_path):
    args = [*TINY[:-6], "--epochs", "3000", "--eta", "2", "--min-epochs", "400", "--rungs", "2", "--rounds", "2",
            "--sampler", "tpe", "--no-progress", "--no-tensorboard", "--plan", "vmap"]
    reference = tmp_path / "reference"
    assert search_cmd.main([*args, "--checkpoint-every", "0", "--out", str(reference)]) == 0
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "experiments.search", *args, *EVERY, "--out", str(out)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(p, lambda: _round_saved(out, 1))  # in the second round, its sampler's
    p.kill()
    p.wait()
    assert (out / "rounds.json").is_file() and not (out / "results.csv").exists()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stdout, again.stdout
    for name in ("curves.npz", "results.csv", "rounds.json"):
        if name == "rounds.json":  # the same members, numbers and results, in the same order
            a, b = (json.loads((d / name).read_text())["trials"] for d in (reference, out))
            assert a == b
        else:
            assert (reference / name).read_bytes() == (out / name).read_bytes(), name
