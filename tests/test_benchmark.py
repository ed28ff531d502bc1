"""experiments.benchmark --conv at a tiny size: every (members, plan) row is measured, figures saved."""
import json

import pytest

from experiments import benchmark


def test_conv_benchmark_measures_each_member_count_and_plan(tmp_path, capsys):
    out = tmp_path / "conv.json"
    assert benchmark.main(["--conv", "--models", "cnn", "--cnn-steps", "1", "--members", "1,2", "--repeats", "1",
                           "--skip-torch", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["members"], r["plan"]) for r in rows] == [(1, "vmap"), (2, "vmap"), (2, "map")]
    assert all(r["jax_img_s"] > 0 and r["torch_img_s"] is None for r in rows)
    assert "| cnn | 2 | map |" in capsys.readouterr().out


def test_conv_benchmark_rejects_an_unknown_plan():
    with pytest.raises(SystemExit, match="--conv-plans: 'hybrid:2' is not a plan"):
        benchmark.main(["--conv", "--models", "cnn", "--conv-plans", "vmap,hybrid:2", "--skip-torch"])
