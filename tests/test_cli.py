"""``python -m experiments.lr_sweep`` end to end on a tiny grid, and every bad input."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from experiments import lr_sweep
from jaxlabs.tasks import TASKS, get_task

TINY = ["--n", "60", "--epochs", "30", "--width", "8", "--depth", "2", "--no-progress", "--no-tensorboard"]


def test_tiny_sweep_writes_every_file_with_a_row_per_member(tmp_path, capsys):
    out = tmp_path / "run"
    assert lr_sweep.main([*TINY, "--lr", "0.01,0.05", "--seeds", "3", "--tolerance", "1e-3",
                          "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| setting " in printed and "| lr=0.01 " in printed and "| lr=0.05 " in printed
    assert "| converged |" in printed  # a tolerance to reach: convergence is counted
    for name in ("results.json", "results.csv", "curves.npz", "loss_curves.png", "val_true_vs_pred.png",
                 "report.md"):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "| lr=0.01 " in report and "width=8" in report  # the same table, and the options it ran with
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 6
    assert [(float(r["lr"]), int(r["seed"])) for r in rows] == [(0.01, 0), (0.01, 1), (0.01, 2),
                                                                (0.05, 0), (0.05, 1), (0.05, 2)]
    for r in rows:
        assert r["status"] in ("converged", "max_epochs", "diverged")
        assert (r["converged_epoch"] != "") == (r["status"] == "converged")
        assert r["width"] == "8" and r["depth"] == "2" and r["n"] == "60" and float(r["tolerance"]) == 1e-3
        assert np.isfinite(float(r["test_mse"]))
    doc = json.load(open(out / "results.json"))
    assert len(doc["members"]) == 6 and {r["width"] for r in doc["members"]} == {8}
    assert doc["timing"][0]["members"] == 6
    curves = np.load(out / "curves.npz")
    assert curves["loss"].shape == (6, 30) and curves["final_val_pred"].shape[0] == 6
    assert list(curves["lr"]) == [0.01] * 3 + [0.05] * 3


BAD = [
    (["--task", "nope"], "--task"),
    (["--lr", ""], "--lr"),
    (["--lr", "0.01,abc"], "--lr"),
    (["--lr", "0.01,,0.1"], "--lr"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-0.1"], "--lr"),
    (["--seeds", "0"], "--seeds"),
    (["--tolerance", "-1e-4"], "--tolerance"),
    (["--tolerance", "abc"], "--tolerance"),
    (["--kernel", "3"], "--kernel"),  # Lab A has no conv kernel
    (["--width", "0"], "--width"),
    (["--width", "2.5"], "--width"),
    (["--activation", "gelu"], "--activation"),
    (["--task", "boston", "--factor", "1"], "--factor"),
    (["--task", "mnist-cnn", "--depth", "5", "--synthetic", "10"], "--depth"),
    (["--task", "mnist-cnn", "--batch-norm", "--epochs", "0"], "--epochs"),
    (["--task", "fit-poly", "--target", "x^2"], "**"),
    (["--task", "fit-poly", "--target", "log(x)", "--x-range", "-3,3"], "--x-range"),
    (["--task", "fit-poly", "--x-range", "3,1"], "--x-range"),
]


@pytest.mark.parametrize("args,flag", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_naming_the_flag_with_exit_code_2(args, flag, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        lr_sweep.main([*TINY, "--out", str(tmp_path / "o"), *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err, err
    assert not (tmp_path / "o" / "results.csv").exists()


def test_unwritable_out_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(SystemExit) as e:
        lr_sweep.main([*TINY, "--out", str(blocker / "sub")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err


def test_bad_input_from_the_shell_has_no_traceback():
    p = subprocess.run([sys.executable, "-m", "experiments.lr_sweep", "--lr", "fast"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert "--lr" in p.stderr and "'fast' is not a number" in p.stderr


def test_help_documents_every_flag():
    p = subprocess.run([sys.executable, "-m", "experiments.lr_sweep", "--help"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0
    for flag in ("--task", "--lr", "--seeds", "--n", "--epochs", "--tolerance", "--width", "--depth",
                 "--activation", "--out"):
        assert flag in p.stdout


@pytest.mark.parametrize("name", sorted(TASKS))
def test_each_tasks_help_lists_its_declared_options_with_their_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        lr_sweep.main(["--task", name, "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    task = get_task(name)
    for o in task.options:
        if o.name != "lr":
            assert o.flag in text and " ".join(o.help.split()[:3]) in text, o.name
    others = {o.flag for cls in TASKS.values() for o in cls.options} - {o.flag for o in task.options}
    assert not any(f"{flag} " in text for flag in others)  # no other task's flags


def test_a_flag_of_another_task_names_the_task_and_its_options(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        lr_sweep.main(["--task", "boston", "--kernel", "3", "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "task boston has no option --kernel" in err and "mnist-cnn" in err and "--patience" in err


def test_fit_poly_with_a_custom_target_draws_the_fitted_curves(tmp_path, capsys):
    out = tmp_path / "poly"
    assert lr_sweep.main(["--task", "fit-poly", "--epochs", "20", "--width", "8", "--seeds", "2", "--lr",
                          "0.01", "--target", "(x+1)**2 + sin(x**2+1) - log(x**2+1)", "--x-range", "-3,3",
                          "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out  # no tolerance to reach: the table is the metric over seeds
    assert "| test_mse (mean +- std) |" in printed and "converged" not in printed
    assert (out / "fitted_curves.png").stat().st_size > 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 2 and rows[0]["target"] == "(x+1)**2 + sin(x**2+1) - log(x**2+1)"
    assert rows[0]["x_range"] == "-3,3"


def test_one_table_for_both_commands_gives_counts_and_population_std():
    from jaxlabs.report import results_table
    from jaxlabs.results import summarize_setting
    from jaxlabs.studies import Setting, Study

    rows = [{"setting": "lr=0.1", "status": "max_epochs", "test_acc": 0.8, "converged_epoch": None},
            {"setting": "lr=0.1", "status": "converged", "test_acc": 0.9, "converged_epoch": 3},
            {"setting": "lr=0.7", "status": "diverged", "test_acc": float("nan"), "converged_epoch": None},
            {"setting": "lr=0.7", "status": "max_epochs", "test_acc": 0.5, "converged_epoch": None}]
    study = Study("s", "E", "t", "fashion-mlp", settings=(Setting("lr=0.1"), Setting("lr=0.7")),
                  metrics=("converged_epoch", "test_acc"))
    summary = {s.label: summarize_setting([r for r in rows if r["setting"] == s.label], study.metrics)
               for s in study.settings}
    table, n_orig, _ = results_table(study, summary, lambda m: m == "test_acc")
    lines = table.splitlines()
    assert [c.strip() for c in lines[0].split("|")[1:-1]] == [
        "setting", "converged", "diverged", "epochs to converge (mean +- std)", "test_acc (mean +- std)"]
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[2:]]
    assert cells[0] == ["lr=0.1", "1/2", "0/2", "3", "0.85 +- 0.05"]  # population std, as the reports
    assert cells[1] == ["lr=0.7", "0/2", "1/2", "-", "0.5"]  # one finite member: no std
    assert n_orig == 0
