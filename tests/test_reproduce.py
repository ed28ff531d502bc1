"""``python -m experiments.reproduce``: every study's --quick version, --list, bad input."""
import csv
import json
import re

import numpy as np
import pytest
from tiny_data import write_mnist

from experiments import reproduce
from jaxlabs.catalogue import STUDIES, resolve

ALL = resolve("all")


def test_list_covers_every_study(capsys):
    assert reproduce.main(["--list"]) == 0
    listed = capsys.readouterr().out
    for s in ALL:
        assert s.key in listed
    assert {s.lab for s in ALL} >= {"A", "B"}


@pytest.fixture(scope="module")
def tiny_idx(tmp_path_factory):
    """MNIST-format files standing in for MNIST and Fashion-MNIST (CIFAR studies' --quick use
    random CIFAR-shaped data)."""
    folder = tmp_path_factory.mktemp("idx")
    write_mnist(folder, n_train=400, n_test=100, learnable=True)
    return str(folder)


# what this test checks is the report: the engine runs each group vmapped, whole epochs, without
# TensorBoard logs (auto, epochs in pieces and the logs have tests of their own)
FAST = ["--plan", "vmap", "--slice-steps", "0", "--no-tensorboard"]


@pytest.mark.parametrize("study", ALL, ids=lambda s: s.key)
def test_quick_study_writes_a_report_with_the_original_numbers(study, tmp_path, tiny_idx):
    data = ["--data-dir", tiny_idx] if study.dataset else []
    assert reproduce.main([study.key, "--quick", "--seeds", "2", "--no-progress", "--out", str(tmp_path), *data,
                           *FAST]) == 0
    out = tmp_path / study.key
    report = (out / "report.md").read_text()
    assert report.startswith(f"# {study.key}")
    assert "**Verdict:**" in report
    for s in study.settings:
        assert f"| {s.label} " in report  # a row per setting
        for o in s.originals:
            assert o.text in report  # the report's own number beside ours
    rows = list(csv.DictReader(open(out / "results.csv")))
    # --quick runs the first and last settings (2 seeds each); the others get a "not run" row
    ran = {study.settings[0].label, study.settings[-1].label}
    assert len(rows) == 2 * len(ran)
    assert {r["setting"] for r in rows} == ran
    assert report.count("| not run ") == len(study.settings) - len(ran)
    assert (out / "loss_curves.png").stat().st_size > 0
    for c in study.claims:  # a claim's metrics are ones the members record (no typo, no "no data")
        assert set(c.metrics()) <= set(rows[0]), (c.text, c.metrics())
    assert "level: " in report or not study.claims  # the conclusions name their test and level

    # --report-only rewrites the same report from results.json alone (no training)
    saved = json.loads((out / "results.json").read_text())
    (out / "report.md").write_text(report.replace("**Verdict:**", "**Verdict (stale):**"))
    assert reproduce.main([study.key, "--report-only", "--out", str(tmp_path)]) == 0
    assert (out / "report.md").read_text() == report
    assert json.loads((out / "results.json").read_text()) == saved


def test_setting_trains_only_the_chosen_settings_and_the_report_names_the_others(tmp_path, capsys):
    study = resolve("B-lr")[0]
    labels = [s.label for s in study.settings]
    chosen = [labels[2], labels[0]]  # any order on the command line: the study's order in the results
    args = ["B-lr", "--quick", "--seeds", "2", "--no-progress", "--out", str(tmp_path)]
    assert reproduce.main([*args, "--setting", chosen[0], "--setting", chosen[1]]) == 0
    assert (f"(2 of {len(labels)} settings (not run: {labels[1]}, {labels[3]}) x 2 seeds)"
            in capsys.readouterr().out)
    out = tmp_path / "B-lr"
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["setting"] for r in rows] == [labels[0]] * 2 + [labels[2]] * 2
    report = (out / "report.md").read_text()
    not_run = [labels[1], labels[3]]
    assert f"2 of {len(labels)} settings (not run: {', '.join(not_run)}) x 2 seeds = 4 members" in report
    assert f"--setting '{chosen[0]}' --setting '{chosen[1]}'" in report  # the command as a shell takes it
    for label in not_run:
        assert re.search(rf"^\| {re.escape(label)} +\| not run ", report, re.MULTILINE)
    # --report-only rewrites it word for word from results.json (the full study, two settings saved)
    (out / "report.md").write_text(report.replace("2 of 4 settings", "4 settings"))
    assert reproduce.main(["B-lr", "--report-only", "--out", str(tmp_path)]) == 0
    assert (out / "report.md").read_text() == report


@pytest.mark.parametrize("argv, message", [
    (["B-lr", "--setting", "lr=7"], "B-lr has no setting 'lr=7'; its settings are 'lr 1', 'lr 0.1'"),
    (["B", "--setting", "lr=0.001"], "'B' is 3 studies; give one (e.g. B-epochs) with --setting"),
])
def test_setting_that_names_nothing_is_a_one_line_error(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        reproduce.main([*argv, "--quick", "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_a_lab_letter_runs_its_studies_and_writes_an_index(tmp_path):
    assert reproduce.main(["B", "--quick", "--seeds", "1", "--no-progress", "--no-tensorboard", "--out", str(tmp_path)]) == 0
    index = (tmp_path / "index.md").read_text()
    for s in resolve("B"):
        assert f"[{s.key}]({s.key}/report.md)" in index
    assert "(--quick: not a result)" in index

    # a later run into the same folder keeps the earlier studies in the index, marked as such
    assert reproduce.main(["C-lr", "--quick", "--seeds", "1", "--no-progress", "--no-tensorboard", "--out", str(tmp_path)]) == 0
    lines = (tmp_path / "index.md").read_text().splitlines()
    c_line = next(line for line in lines if line.startswith("| [C-lr]"))
    assert c_line.endswith("| this run |")
    for s in resolve("B"):
        line = next(line for line in lines if line.startswith(f"| [{s.key}]"))
        assert "earlier: `python -m experiments.reproduce B --quick" in line
    keys = [line.split("]")[0][3:] for line in lines if line.startswith("| [")]
    assert keys == [s.key for s in resolve("B")] + ["C-lr"]  # the catalogue's order


def test_index_reads_the_verdict_of_folders_written_before_results_json_kept_it(tmp_path):
    import json
    import os

    from jaxlabs.reproduce import write_index

    def folder(key, report):
        d = tmp_path / key
        d.mkdir()
        (d / "results.json").write_text(json.dumps({"study": key, "title": key, "wall_s": 1.0,
                                                    "command": f"python -m experiments.reproduce {key}"}))
        (d / "report.md").write_text(report)
        return d

    folder("A-depth", "# A-depth\n\n**Verdict:** 1/3 of the report's numbers reproduced.\n\n| t |\n")
    stale = folder("A-lr", "**Verdict:** 2/2 of its conclusions hold.\n")  # an interrupted run's folder
    os.utime(stale / "report.md", (1_000_000, 1_000_000))
    write_index([], [], tmp_path)
    lines = (tmp_path / "index.md").read_text().splitlines()
    depth = next(line for line in lines if line.startswith("| [A-depth]"))
    assert "| 1/3 of the report's numbers reproduced |" in depth
    lr = next(line for line in lines if line.startswith("| [A-lr]"))
    assert "| no verdict recorded |" in lr


def test_report_only_without_saved_results_is_a_one_line_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        reproduce.main(["C-lr", "--report-only", "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no saved results for C-lr" in err and "run the study first" in err


def summary_of(**settings: dict[str, list]) -> dict:
    """A hand-made summary: setting label -> {metric: per-seed values} (every seed ran to its end)."""
    from jaxlabs.results import summarize_setting

    out = {}
    for label, values in settings.items():
        n = len(next(iter(values.values())))
        rows = [{"setting": label, "status": "max_epochs", **{m: v[i] for m, v in values.items()}} for i in range(n)]
        out[label] = summarize_setting(rows, list(values))
    return out


def higher_acc(metric):
    return "acc" in metric


def test_a_comparison_holds_only_when_the_seed_test_rejects():
    from jaxlabs.studies import Compare, Outcome

    claim = Compare("a beats b", "test_acc", "a", "b")
    # separated seeds: every pair agrees, the test rejects
    v = claim.judge(summary_of(a={"test_acc": [0.90, 0.91, 0.92, 0.93]}, b={"test_acc": [0.80, 0.81, 0.82, 0.83]}),
                    higher_acc)
    assert v.outcome is Outcome.HOLDS and v.share == 1.0 and v.p == pytest.approx(1 / 70)
    # overlapping seeds: a's median is higher, only 4 of 9 pairs agree: seed noise, the medians agree
    v = claim.judge(summary_of(a={"test_acc": [0.80, 0.85, 0.90]}, b={"test_acc": [0.82, 0.84, 0.91]}), higher_acc)
    assert v.outcome is Outcome.NOISE and v.leaning is True and v.share == pytest.approx(4 / 9)
    # the other way round, clearly: does not hold
    v = claim.judge(summary_of(a={"test_acc": [0.80, 0.81, 0.82, 0.83]}, b={"test_acc": [0.90, 0.91, 0.92, 0.93]}),
                    higher_acc)
    assert v.outcome is Outcome.FAILS and v.share == 0.0 and v.p_opposite < 0.05
    # the direction is the task's: for a loss, lower is better; ``higher`` overrides it
    losses = summary_of(a={"final_loss": [0.1, 0.2, 0.15, 0.12]}, b={"final_loss": [0.5, 0.6, 0.55, 0.52]})
    assert Compare("a fits better", "final_loss", "a", "b").judge(losses, higher_acc).outcome is Outcome.HOLDS
    assert Compare("a has the higher loss", "final_loss", "a", "b", higher=True).judge(
        losses, higher_acc).outcome is Outcome.FAILS
    # a setting that was not run: undecided
    assert claim.judge(summary_of(a={"test_acc": [0.9]}), higher_acc).outcome is Outcome.NO_DATA


def test_the_seed_test_is_right_at_any_seed_count():
    from jaxlabs.studies import SEED_TEST_LEVEL, Compare, Outcome

    claim = Compare("a beats b", "test_acc", "a", "b")
    # 2 seeds against 2: every pair agrees (the old 84%-of-pairs rule: holds), yet one-sided
    # Mann-Whitney cannot reject below 1/6: seed noise
    v = claim.judge(summary_of(a={"test_acc": [0.9, 0.91]}, b={"test_acc": [0.8, 0.81]}), higher_acc)
    assert v.share == 1.0 and v.p == pytest.approx(1 / 6) and v.outcome is Outcome.NOISE
    # 3 against 8: 21 of 24 pairs agree (87.5%) rejects at 5% (exact p = 7/165) ...
    b = {"test_acc": [0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.08, 0.09]}
    v = claim.judge(summary_of(a={"test_acc": [0.20, 0.19, 0.055]}, b=b), higher_acc)
    assert v.share == pytest.approx(21 / 24) and v.p == pytest.approx(7 / 165) and v.outcome is Outcome.HOLDS
    # ... and 20 of 24 (83%) does not (p = 11/165)
    v = claim.judge(summary_of(a={"test_acc": [0.20, 0.19, 0.045]}, b=b), higher_acc)
    assert v.share == pytest.approx(20 / 24) and v.p == pytest.approx(11 / 165) and v.p > SEED_TEST_LEVEL
    assert v.outcome is Outcome.NOISE


def formerly_unchecked(key: str):
    """The catalogue's claim of ``key`` that used to skip the seed test, with its study."""
    from jaxlabs.studies import Compare

    study = resolve(key)[0]
    return study, next(c for c in study.claims if not isinstance(c, Compare))


def judged(study, summary, tmp_path):
    """The claim's verdict and the study's verdict line, as write_report gives them."""
    from jaxlabs.report import metric_direction, write_report
    from jaxlabs.tasks import get_task

    task = get_task(study.task)
    claim = next(c for c in study.claims if set(c.labels()) <= set(summary))
    for row in summary.values():  # the table's other columns: no value
        for m in study.summary_metrics():
            row.setdefault(m, np.empty(0))
            row.setdefault(f"{m}_median", None)
    verdict, _, _ = write_report(study, task, summary, [], [0], 1.0, False, tmp_path, "")
    return claim.judge(summary, metric_direction(study, task)), verdict


def converged(label: str, k: int, n: int = 5) -> dict:
    from jaxlabs.results import summarize_setting

    rows = [{"setting": label, "status": "converged" if i < k else "max_epochs", "converged_epoch": 1000.0 + i,
             "test_mse": 1e-4} for i in range(n)]
    return summarize_setting(rows, ["converged_epoch", "test_mse"])


def test_a_lr_converged_claim_is_not_held_on_counts_that_only_lean_its_way(tmp_path):
    from jaxlabs.studies import MoreConverged, Outcome

    study, claim = formerly_unchecked("A-lr")
    assert isinstance(claim, MoreConverged)
    v, verdict = judged(study, {"N=2000 lr=0.01": converged("N=2000 lr=0.01", 3),
                                "N=2000 lr=0.1": converged("N=2000 lr=0.1", 2)}, tmp_path)
    assert v.outcome is Outcome.NOISE and v.leaning is True  # 3/5 against 2/5: Fisher p = 0.5
    assert verdict.endswith("; 0/2 of its conclusions hold (1 within the seeds' noise; 1 undecided: no data)")
    assert "within the seeds' noise (the converged shares agree): at N=2000, lr 0.1 converges less often" \
        in (tmp_path / "report.md").read_text()
    assert "Fisher exact test" in (tmp_path / "report.md").read_text()
    v, _ = judged(study, {"N=2000 lr=0.01": converged("N=2000 lr=0.01", 5),
                          "N=2000 lr=0.1": converged("N=2000 lr=0.1", 0)}, tmp_path)
    assert v.outcome is Outcome.HOLDS and v.p == pytest.approx(1 / 252) and v.share == 1.0


def test_e_epochs_within_a_margin_needs_the_seeds_to_show_it(tmp_path):
    from jaxlabs.studies import Outcome, Similar

    study, claim = formerly_unchecked("E-epochs")
    assert isinstance(claim, Similar)
    # medians 0.003 apart (within 1.5 points), but the seeds spread over 12 points: cannot tell
    wide = summary_of(**{"5 epochs": {"test_acc": [0.80, 0.84, 0.86, 0.88, 0.92]},
                         "10 epochs": {"test_acc": [0.79, 0.83, 0.863, 0.89, 0.93]}})
    v, verdict = judged(study, wide, tmp_path)
    assert v.outcome is Outcome.NOISE and v.leaning is True
    assert verdict.startswith("0/1 of its conclusions hold (1 within the seeds' noise)")
    assert "TOST" in (tmp_path / "report.md").read_text()
    tight = summary_of(**{"5 epochs": {"test_acc": [0.860, 0.861, 0.862, 0.863, 0.864]},
                          "10 epochs": {"test_acc": [0.865, 0.866, 0.867, 0.868, 0.869]}})
    v, verdict = judged(study, tight, tmp_path)
    assert v.outcome is Outcome.HOLDS and verdict == "1/1 of its conclusions hold"
    apart = summary_of(**{"5 epochs": {"test_acc": [0.80, 0.81, 0.82, 0.83, 0.84]},
                          "10 epochs": {"test_acc": [0.86, 0.87, 0.88, 0.89, 0.90]}})
    assert judged(study, apart, tmp_path)[0].outcome is Outcome.FAILS


def test_f_schedule_jump_is_decided_on_each_seeds_gain(tmp_path):
    from jaxlabs.studies import GainsMore, Outcome

    study, claim = formerly_unchecked("F-schedule")
    assert isinstance(claim, GainsMore)

    def schedule(drop_gains, constant_gains):
        start = [0.50, 0.52, 0.54, 0.56, 0.58]
        return summary_of(**{label: {"test_acc": [s + g for s, g in zip(start, gains)], "test_acc_epoch5": start,
                                     "test_acc_epoch6": [s + g for s, g in zip(start, gains)]}
                             for label, gains in (("0.1 then 0.01", drop_gains), ("constant 0.1", constant_gains))})

    # median gains 0.05 against 0.04, overlapping: the medians agree, the seeds do not decide
    v, verdict = judged(study, schedule([0.00, 0.03, 0.05, 0.07, 0.10], [0.01, 0.02, 0.04, 0.08, 0.09]), tmp_path)
    assert v.outcome is Outcome.NOISE and v.leaning is True and verdict.startswith("0/1")
    v, verdict = judged(study, schedule([0.10, 0.11, 0.12, 0.13, 0.14], [0.00, 0.01, 0.02, -0.01, 0.03]), tmp_path)
    assert v.outcome is Outcome.HOLDS and verdict == "1/1 of its conclusions hold"
    # a seed without the epoch-6 point: no per-seed gain, medians only, never counted as holding
    gappy = schedule([0.10, 0.11, 0.12, 0.13, 0.14], [0.00, 0.01, 0.02, -0.01, 0.03])
    gappy["0.1 then 0.01"]["test_acc_epoch6"] = gappy["0.1 then 0.01"]["test_acc_epoch6"][:4]
    v, verdict = judged(study, gappy, tmp_path)
    assert v.outcome is Outcome.MEDIANS_ONLY and v.leaning is True
    assert verdict == "0/1 of its conclusions hold (1 medians only)"
    assert "- medians only (the median gains agree): test accuracy jumps" in (tmp_path / "report.md").read_text()


def test_a_seed_that_did_not_converge_counts_as_the_slowest():
    from jaxlabs.studies import Compare, Outcome

    claim = Compare("a converges sooner", "converged_epoch", "a", "b")
    rows = {"a": converged("a", 5), "b": converged("b", 0)}  # b: no epoch at all, every seed slower
    assert claim.judge(rows, higher_acc).outcome is Outcome.HOLDS
    rows = {"a": converged("a", 0), "b": converged("b", 0)}
    assert claim.judge(rows, higher_acc).outcome is Outcome.NO_DATA


def test_a_claim_on_a_metric_outside_the_table_is_summarised_and_decided(tmp_path):
    from jaxlabs.report import write_report
    from jaxlabs.results import summarize_setting
    from jaxlabs.studies import Compare, Setting, Study
    from jaxlabs.tasks import get_task

    study = Study("X-drop", "D", "dropout", "mnist-cnn", settings=(Setting("low"), Setting("high")),
                  metrics=("test_acc",),
                  claims=(Compare("high has the higher loss", "final_loss", "high", "low", higher=True),))
    assert study.summary_metrics() == ("test_acc", "final_loss")

    def rows(label, losses):
        return [{"setting": label, "status": "max_epochs", "test_acc": 0.9, "final_loss": v} for v in losses]

    summary = {"low": summarize_setting(rows("low", [0.1, 0.2, 0.15, 0.12]), study.summary_metrics()),
               "high": summarize_setting(rows("high", [0.5, 0.6, 0.55, 0.52]), study.summary_metrics())}
    verdict, _, _ = write_report(study, get_task("mnist-cnn"), summary, [], [0, 1, 2, 3], 1.0, False, tmp_path, "")
    assert verdict == "1/1 of its conclusions hold"
    report = (tmp_path / "report.md").read_text()
    assert "- holds: high has the higher loss (p = 0.014; 100% of seed pairs agree)" in report
    assert "decided over the seeds at the 5% level: a comparison of two settings by a one-sided Mann-Whitney" in report


def test_unknown_study_is_a_one_line_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        reproduce.main(["Z-nothing", "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown study" in err


# the studies of the five lab reports, lab by lab, written out here rather than read off the catalogue
EXPECTED_KEYS = {
    "A": ["A-depth", "A-lr", "A-width", "A-activation", "A-optimizer", "A-tolerance"],
    "B": ["B-epochs", "B-lr", "B-custom"],
    "C": ["C-depth", "C-lr", "C-activation"],
    "D": ["D-depth", "D-kernel", "D-dropout", "D-batchnorm", "D-augment", "D-subset"],
    "E": ["E-batch", "E-hidden", "E-lr", "E-epochs", "E-variants", "E-best", "E-own"],
    "F": ["F-schedule"],
    "G": ["G-optimizers"],
}


def test_catalogue_holds_each_expected_study_once_and_labs_resolve():
    keys = [s.key for s in STUDIES]
    assert len(keys) == 27 and sorted(keys) == sorted(k for ks in EXPECTED_KEYS.values() for k in ks)
    for lab, lab_keys in EXPECTED_KEYS.items():
        assert [s.key for s in resolve(lab.lower())] == lab_keys
        assert all(s.lab == lab for s in resolve(lab))
    assert [s.key for s in resolve("e-EPOCHS")] == ["E-epochs"]


def test_every_claim_compares_settings_of_its_study():
    for s in STUDIES:
        labels = {x.label for x in s.settings}
        for c in s.claims:
            assert set(c.labels()) <= labels, (s.key, c.text)
            assert set(c.metrics()) <= set(s.summary_metrics()), (s.key, c.text)


def test_studies_and_catalogue_do_not_import_each_other():
    import ast
    from pathlib import Path

    import jaxlabs.studies

    tree = ast.parse(Path(jaxlabs.studies.__file__).read_text())
    imported = {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported and not any(m.startswith(("jaxlabs.catalogue", "jaxlabs.reproduce")) for m in imported)
