"""``python -m experiments.reproduce``: every study's --quick version, --list, bad input."""
import csv
import json

import pytest
from tiny_data import write_mnist

from experiments import reproduce
from jaxlabs.studies import REGISTRY, resolve

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


@pytest.mark.parametrize("study", ALL, ids=lambda s: s.key)
def test_quick_study_writes_a_report_with_the_original_numbers(study, tmp_path, tiny_idx):
    data = ["--data-dir", tiny_idx] if study.dataset else []
    assert reproduce.main([study.key, "--quick", "--seeds", "2", "--no-progress", "--out", str(tmp_path), *data]) == 0
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
    assert report.count("not run (--quick)") == len(study.settings) - len(ran)
    assert (out / "loss_curves.png").stat().st_size > 0
    for c in study.claims:  # a comparison's metric is one the members record (no typo, no "no data")
        assert getattr(c.check, "metric", "") in ("", *rows[0]), (c.text, c.check.metric)

    # --report-only rewrites the same report from results.json alone (no training)
    saved = json.loads((out / "results.json").read_text())
    (out / "report.md").write_text(report.replace("**Verdict:**", "**Verdict (stale):**"))
    assert reproduce.main([study.key, "--report-only", "--out", str(tmp_path)]) == 0
    assert (out / "report.md").read_text() == report
    assert json.loads((out / "results.json").read_text()) == saved


def test_a_lab_letter_runs_its_studies_and_writes_an_index(tmp_path):
    assert reproduce.main(["B", "--quick", "--seeds", "1", "--no-progress", "--out", str(tmp_path)]) == 0
    index = (tmp_path / "index.md").read_text()
    for s in resolve("B"):
        assert f"[{s.key}]({s.key}/report.md)" in index
    assert "(--quick: not a result)" in index

    # a later run into the same folder keeps the earlier studies in the index, marked as such
    assert reproduce.main(["C-lr", "--quick", "--seeds", "1", "--no-progress", "--out", str(tmp_path)]) == 0
    lines = (tmp_path / "index.md").read_text().splitlines()
    c_line = next(line for line in lines if line.startswith("| [C-lr]"))
    assert c_line.endswith("| this run |")
    for s in resolve("B"):
        line = next(line for line in lines if line.startswith(f"| [{s.key}]"))
        assert "earlier: `python -m experiments.reproduce B --quick" in line
    keys = [line.split("]")[0][3:] for line in lines if line.startswith("| [")]
    assert keys == [s.key for s in resolve("B")] + ["C-lr"]  # the registry's order


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


def test_a_comparison_that_holds_only_on_the_medians_is_reported_as_seed_noise():
    from jaxlabs.reproduce import judge_claim, summarize_setting
    from jaxlabs.studies import CLEAR_PAIRS, Claim, higher, pair_share

    assert pair_share([1, 2], [3, 4]) == 1.0 and pair_share([3, 4], [1, 2]) == 0.0
    assert pair_share([1, 2], [2, 3]) == 0.875 and pair_share([], [1]) is None

    def rows(label, accs):
        return [{"setting": label, "status": "max_epochs", "test_acc": a} for a in accs]

    def summary(a, b):
        return {"a": summarize_setting(rows("a", a), ["test_acc"]), "b": summarize_setting(rows("b", b), ["test_acc"])}

    claim = Claim("a beats b", higher("test_acc", "a", "b"))
    # separated seeds: every pair agrees
    assert judge_claim(claim, summary([0.90, 0.91, 0.92], [0.80, 0.81, 0.82])) == ("a beats b", True, True, 1.0)
    # overlapping seeds: a's median is higher, but only 4 of 9 pairs agree: not decided
    text, ok, clear, share = judge_claim(claim, summary([0.80, 0.85, 0.90], [0.82, 0.84, 0.91]))
    assert ok is True and clear is False and share == pytest.approx(4 / 9) and share < CLEAR_PAIRS
    # the other way round, clearly: does not hold, decided (no pair agrees)
    assert judge_claim(claim, summary([0.80, 0.81], [0.90, 0.91])) == ("a beats b", False, True, 0.0)
    # a's median lower but 5 of 9 pairs for it: not decided either
    text, ok, clear, share = judge_claim(claim, summary([0.84, 0.83, 0.95], [0.82, 0.85, 0.86]))
    assert ok is False and clear is False and share == pytest.approx(5 / 9)
    # a claim that is not a two-setting comparison has no pair share
    other = Claim("a has values", lambda r: r["a"]["test_acc_median"] is not None)
    assert judge_claim(other, summary([0.8], [0.9])) == ("a has values", True, None, None)


def test_a_claim_on_a_metric_outside_the_table_is_summarised_and_decided(tmp_path):
    from jaxlabs.reproduce import summarize_setting, write_report
    from jaxlabs.studies import Claim, Setting, Study, higher
    from jaxlabs.tasks import get_task

    study = Study("X-drop", "D", "dropout", "mnist-cnn", settings=(Setting("low"), Setting("high")),
                  metrics=("test_acc",), claims=(Claim("high has the higher loss", higher("final_loss", "high", "low")),))
    assert study.summary_metrics() == ("test_acc", "final_loss")

    def rows(label, losses):
        return [{"setting": label, "status": "max_epochs", "test_acc": 0.9, "final_loss": v} for v in losses]

    summary = {"low": summarize_setting(rows("low", [0.1, 0.2, 0.15]), study.summary_metrics()),
               "high": summarize_setting(rows("high", [0.5, 0.6, 0.55]), study.summary_metrics())}
    verdict, _ = write_report(study, get_task("mnist-cnn"), summary, [], [0, 1, 2], 1.0, False, tmp_path, "")
    assert verdict == "1/1 of its conclusions hold"
    assert "high has the higher loss (100% of seed pairs agree)" in (tmp_path / "report.md").read_text()


def test_unknown_study_is_a_one_line_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        reproduce.main(["Z-nothing", "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown study" in err


def test_registry_keys_are_unique_and_labs_resolve():
    assert len(REGISTRY) == len(ALL)
    assert all(s.lab == "A" for s in resolve("a"))
