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


@pytest.mark.parametrize("plans, message", [("vmap,hybrid", "--conv-plans: 'hybrid' is not a plan; use auto"),
                                             ("map,auto", "--conv-plans: name the plans to time"),
                                             (",", "--conv-plans: name the plans to time")])
def test_conv_benchmark_rejects_what_is_not_a_plan_to_time(plans, message):
    with pytest.raises(SystemExit, match=message):
        benchmark.main(["--conv", "--models", "cnn", "--conv-plans", plans, "--skip-torch"])
