"""``python -m experiments.reproduce``: every study's --quick version, --list, bad input."""
import csv

import pytest

from experiments import reproduce
from jaxlabs.studies import REGISTRY, resolve

ALL = resolve("all")


def test_list_covers_every_study(capsys):
    assert reproduce.main(["--list"]) == 0
    listed = capsys.readouterr().out
    for s in ALL:
        assert s.key in listed
    assert {s.lab for s in ALL} >= {"A", "B"}


@pytest.mark.parametrize("study", [s for s in ALL if s.dataset is None], ids=lambda s: s.key)
def test_quick_study_writes_a_report_with_the_original_numbers(study, tmp_path):
    assert reproduce.main([study.key, "--quick", "--seeds", "2", "--no-progress", "--out", str(tmp_path)]) == 0
    out = tmp_path / study.key
    report = (out / "report.md").read_text()
    assert report.startswith(f"# {study.key}")
    assert "**Verdict:**" in report
    for s in study.settings:
        assert f"| {s.label} " in report  # a row per setting
        for o in s.originals:
            assert o.text in report  # the report's own number beside ours
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 2 * len(study.settings)
    assert {r["setting"] for r in rows} == {s.label for s in study.settings}
    assert (out / "loss_curves.png").stat().st_size > 0


def test_a_lab_letter_runs_its_studies_and_writes_an_index(tmp_path):
    assert reproduce.main(["B", "--quick", "--seeds", "1", "--no-progress", "--out", str(tmp_path)]) == 0
    index = (tmp_path / "index.md").read_text()
    for s in resolve("B"):
        assert f"[{s.key}]({s.key}/report.md)" in index


def test_unknown_study_is_a_one_line_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        reproduce.main(["Z-nothing", "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown study" in err


def test_registry_keys_are_unique_and_labs_resolve():
    assert len(REGISTRY) == len(ALL)
    assert all(s.lab == "A" for s in resolve("a"))
