"""``python -m experiments.benchmark``: every sub-command's --help and one tiny run of each, whose
figures are read back from its --json; bad input is one line, exit 2."""
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from experiments import benchmark


def run(tmp_path, capsys, *argv):
    out = tmp_path / "figures.json"
    assert benchmark.main([*map(str, argv), "--json", str(out)]) == 0
    return json.loads(out.read_text()), capsys.readouterr().out


@pytest.mark.parametrize("command", [*benchmark.COMMANDS])
def test_each_sub_command_has_its_own_short_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        benchmark.main([command, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith(f"usage: python -m experiments.benchmark {command} ")
    assert f"python -m experiments.benchmark {command}" in out.split("options:")[0].split("\n", 1)[1]  # the command
    assert len(out.splitlines()) < 60


def test_help_lists_every_sub_command():
    p = subprocess.run([sys.executable, "-m", "experiments.benchmark", "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and all(f"    {c}" in p.stdout for c in [*benchmark.COMMANDS, "device"])


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: COMMAND"),
    (["plots"], "argument COMMAND: invalid choice: 'plots'"),
    (["conv", "--plans", "vmap,hybrid"], "argument --plans: 'hybrid' is not a plan; use auto"),
    (["conv", "--plans", "map,auto"], "argument --plans: auto chooses among plans and is not one itself; name vmap, map"),
    (["conv", "--models", "cnn,vgg"], "argument --models: 'vgg' is not a model; choose from resnet20, cnn"),
    (["auto", "--rounds", "-1"], "argument --rounds: -1 must be >= 0"),
    (["auto", "--rounds", "1", "--plans", "map,auto"], "argument --plans: auto chooses among plans and is not one itself; name vmap, map"),
    (["plans", "--workloads", "mlp"], "argument --workloads: 'mlp' is not a workload"),
    (["chunk-spread"], "the following arguments are required: rounds"),
    (["search", "--labs", "lab-a,mnist"], "argument --labs: 'mnist' is not one of lab-a, boston, fashion"),
    (["search", "--methods", "grid"], "argument --methods: 'grid' is not one of halving, hyperband, hyperband-halton, hyperband-tpe, pbt"),
])
def test_bad_input_is_one_line_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        benchmark.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and message in err, err


def test_lab_a(tmp_path, capsys):
    doc, out = run(tmp_path, capsys, "lab-a", "--lr", "0.01", "--seeds", 2, "--n", 50, "--epochs", 5,
                   "--torch-threads", 1)
    assert doc["members"] == 2 and doc["vmapped_s"] > 0 and doc["jax_alone_s"] > 0
    assert "JAX one at a time / vmapped grid" in out
    try:
        import torch  # noqa: F401
    except ImportError:
        assert doc["torch_s"] is None
    else:
        assert doc["torch_s"] > 0 and "PyTorch report loop / vmapped grid" in out


def test_plans(tmp_path, capsys):
    doc, out = run(tmp_path, capsys, "plans", "--workloads", "lab-a", "--members", 2)
    assert [r["plan"] for r in doc["plans"]] == ["vmap", "map", "auto"]  # auto's candidates for 2 members, auto
    assert all(r["rate"] > 0 and r["members"] == 2 for r in doc["plans"])
    assert doc["plans"][2]["chose"] in ("vmap", "map")  # it probed (forced to) and chose a candidate
    assert "| lab-a | 2 |" in out


def test_compaction(tmp_path, capsys):
    doc, _ = run(tmp_path, capsys, "compaction", "--seeds", 1, "--epochs", 40)
    assert set(doc) >= {"vmap, no compaction", "auto + compaction", "gain"} and doc["gain"] > 0
    assert len(doc["auto + compaction"]["stop_epochs"]) == 3


def test_chunk_spread(tmp_path, capsys):
    doc, out = run(tmp_path, capsys, "chunk-spread", 2, "--chunk", 3)
    assert list(doc) == ["vmap", "map", "hybrid:4"]  # auto's candidates for 9 members
    assert all(len(v["times"]) == 2 and v["min"] <= v["median"] <= v["max"] for v in doc.values())
    assert "one 3-epoch chunk of the default grid (9 members), 2 rounds" in out


def test_auto_and_sweep_default(tmp_path, capsys):
    cache_dir = os.environ.get("JAXLABS_CACHE_DIR")
    cache = Path(cache_dir) / "plans.json"
    before = cache.read_text() if cache.exists() else None
    doc, out = run(tmp_path, capsys, "auto", "--rounds", 1, "--epochs", 6, "--plans", "vmap",
                   "--group-members", 2, "--group-epochs", 4)
    assert [r["variant"] for r in doc["sweep"]] == ["auto, first run", "auto, cached", "vmap"]
    first, _, vmap = doc["sweep"]
    assert first["source"].startswith("short group") and vmap["source"] == "forced" and vmap["plan"] == "vmap"
    assert all(r["train_s"] > 0 for r in doc["sweep"]) and doc["sweep_summary"]["fastest_forced"] == "vmap"
    assert doc["sweep_summary"]["ratio"]["vmap"] == 1.0
    assert [r["variant"] for r in doc["group"]] == ["auto, first run", "vmap"]
    assert "| auto, cached | " in out and "auto's first run / the round's fastest forced plan" in out
    assert os.environ.get("JAXLABS_CACHE_DIR") == cache_dir  # a fresh cache for each first run, not the user's
    assert (cache.read_text() if cache.exists() else None) == before
    doc, out = run(tmp_path, capsys, "sweep-default", "--epochs", 4)
    assert [r["variant"] for r in doc["sweep"]] == ["auto, first run", "auto, cached", "vmap"] and not doc["group"]
    doc, out = run(tmp_path, capsys, "auto", "--rounds", 0, "--plans", "map", "--group-members", 2, "--group-epochs", 4)
    assert not doc["sweep"] and [r["variant"] for r in doc["group"]] == ["auto, first run", "map"]
    assert doc["group_summary"]["fastest_forced"] == "map" and "default sweep" not in out


def test_conv_measures_each_member_count_and_plan(tmp_path, capsys):
    doc, out = run(tmp_path, capsys, "conv", "--models", "cnn", "--cnn-steps", 1, "--members", "1,2", "--repeats", 1,
                   "--skip-torch")
    rows = doc["rows"]
    assert [(r["members"], r["plan"]) for r in rows] == [(1, "vmap"), (2, "vmap"), (2, "map")]
    assert all(r["jax_img_s"] > 0 and r["torch_img_s"] is None for r in rows)
    assert "| cnn | 2 | map |" in out


def test_conv_with_another_convolution_and_pytorch(tmp_path, capsys):
    pytest.importorskip("torch")
    doc, out = run(tmp_path, capsys, "conv", "--models", "cnn", "--cnn-steps", 1, "--members", 1, "--repeats", 1,
                   "--conv-impl", "lax", "--torch-threads", 1)
    assert doc["conv_impl"] == "lax" and doc["rows"][0]["torch_img_s"] > 0
    assert "conv lax" in out


def test_devices_overhead(tmp_path, capsys):
    doc, out = run(tmp_path, capsys, "devices-overhead", "--count", 2, "--epochs", 5)
    assert doc["2 simulated devices"]["devices"] == 2 and doc["1 device"]["devices"] == 1
    assert "splitting over 2 devices costs" in out


def test_device_hands_its_arguments_to_the_device_suite(monkeypatch, capsys):
    seen = []
    fake = types.ModuleType(benchmark.DEVICE_SUITE)
    fake.main = lambda argv: seen.append(argv) or 3
    monkeypatch.setitem(sys.modules, benchmark.DEVICE_SUITE, fake)
    assert benchmark.main(["device", "--minutes", "8", "--json", "x.json"]) == 3
    assert benchmark.main(["--suite", "device", "--help"]) == 3  # the earlier spelling; its own --help
    assert seen == [["--minutes", "8", "--json", "x.json"], ["--help"]]


def test_device_without_the_suite_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, benchmark.DEVICE_SUITE, None)  # as if the module were not there
    with pytest.raises(SystemExit) as e:
        benchmark.main(["device"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "experiments.device_suite is not in this checkout" in err


def test_search_times_each_methods_decisions(tmp_path, capsys):
    doc, out = run(tmp_path, capsys, "search", "--labs", "none", "--overhead", 12, "--overhead-epochs", 60)
    assert [r["method"] for r in doc["overhead"]] == ["halving", "pbt"] and doc["labs"] == {}
    for r in doc["overhead"]:
        assert r["members"] == 12 and r["decisions"] > 0 and 0 < r["decide_s"] < r["wall_s"]
    assert "ms a decision" in out


def test_search_verdicts_use_the_projects_seed_test():
    from experiments.bench.search import verdict

    worse = verdict([0.5, 0.6, 0.7, 0.8, 0.9], [0.1, 0.2, 0.3, 0.35, 0.4], higher=False, claim="worse")
    assert worse["outcome"] == "holds" and worse["p"] == pytest.approx(1 / 252)  # every search above every seed
    better = verdict([0.9, 0.91, 0.92, 0.93, 0.94], [0.8, 0.81, 0.82, 0.83, 0.84], higher=True, claim="better")
    assert better["outcome"] == "holds"
    tied = verdict([0.1, 0.3, 0.5], [0.2, 0.4, 0.6], higher=False, claim="worse")
    assert tied["outcome"] == "within the seeds' noise"
