"""Search inside the program: successive halving and PBT on the member axis.

The decisions are checked against schedules worked out by hand on a toy task whose validation loss
is a known function of each member's numbers (``|lr - 0.35| + offset + 1/(epoch + 1)``) and whose
carry is the sum of the learning rates it trained with, so who was pruned when and whose state a
copy took can be read off the final numbers. The real tasks then run from the command: its files,
its bad input, a kill -9 mid-search, and several devices.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from experiments import search as search_cmd
from jaxlabs.store import saved_position
from jaxlabs.engine.group import member_keys
from jaxlabs.engine.options import EngineOptions
from jaxlabs.engine.plans import Plan
from jaxlabs.options import by_name, static_option, traced_option
from jaxlabs.search import SearchError, SearchOptions, parse_dimension, population, run_search, sample, search_space
from jaxlabs.search import decide
from jaxlabs.search.policies import _draws
from jaxlabs.search.run import useful_rungs
from jaxlabs.sweep import Member
from jaxlabs.tasks.base import Task
from jaxlabs.train import Trainer
from tb_read import read_runs
from test_resume import EVERY, wait_for

TARGET = 0.35
# the toy's programs take microseconds: shrinking never pays for its compile unless told to
ALWAYS_SHRINK = EngineOptions(compaction=True, compact_worth_s=0)
MAP = Plan("map")


class Toy(Task):
    """val_loss = |lr - 0.35| + offset + 1/(epoch + 1); the carry ``w`` adds lr every epoch."""

    name = "toy"
    lab = "T"
    description = "a toy whose validation loss is known in advance"
    options = (static_option("epochs", int, 12, "epochs", low=1),
               static_option("offset", float, 0.0, "added to the validation loss"),
               traced_option("lr", 0.1, "learning rate", low=0, low_open=True, high=1, log=True),
               traced_option("momentum", 0.0, "unused", low=0, high=1))
    chunk = 2
    primary_metric = "test_loss"

    def build(self, static):
        def init(key, hp, data, tx):
            return {"w": jnp.float32(0)}

        def epoch(carry, hp, data, e, key, tx):
            val = jnp.abs(hp["lr"] - TARGET) + static["offset"] + 1 / (e + 1.0)
            return {"w": carry["w"] + hp["lr"]}, {"loss": val, "val_loss": val}, jnp.bool_(False)

        def finish(carry, hp, data):
            return {"w": carry["w"], "test_loss": jnp.abs(hp["lr"] - TARGET) + static["offset"]}

        return Trainer(init, epoch, finish, max_epochs=static["epochs"], monitor="val_loss"), {"x": jnp.zeros(1)}


def toy_members(lrs, offsets=None, epochs=12):
    task = Toy()
    offsets = offsets or [0.0] * len(lrs)
    return task, [Member(f"lr={lr}", task.resolve_static(epochs=epochs, offset=o), task.hparams(lr=lr), i)
                  for i, (lr, o) in enumerate(zip(lrs, offsets))]


def toy_space(task):
    return search_space(task.options, {"lr": parse_dimension(by_name(task.options)["lr"], "0.05..0.95")})


# ----------------------------------------------------------------------------- the decisions alone
def test_ranking_puts_nan_last_and_breaks_ties_by_index():
    scores = np.array([0.5, np.nan, 0.2, 0.5, np.inf, 0.2])
    assert decide.ranking(scores, higher=False).tolist() == [2, 5, 0, 3, 1, 4]
    assert decide.ranking(scores, higher=True).tolist() == [0, 3, 2, 5, 1, 4]


def test_rungs_and_the_budget():
    assert decide.rungs(3, 3, 100) == [3, 9, 27, 81]
    assert decide.rungs(3, 3, 100, count=2) == [3, 9]
    with pytest.raises(ValueError, match="the budget allows 4"):
        decide.rungs(3, 3, 100, count=5)
    with pytest.raises(ValueError, match="no rung"):
        decide.rungs(100, 3, 100)
    assert useful_rungs(27, 3) == 3 and useful_rungs(8, 2) == 3 and useful_rungs(2, 3) == 1


def test_survivors_keep_the_best_third_of_those_still_in_the_race():
    scores = np.array([0.9, 0.1, np.nan, 0.3, 0.2, 0.8, 0.05, 0.4, 0.7])
    alive = np.array([True] * 8 + [False])
    # alive: 8 -> keep 8 // 3 = 2: the two lowest (0.05 at 6, 0.1 at 1); 8 is out of the race
    assert np.flatnonzero(decide.survivors(scores, alive, 3, higher=False)).tolist() == [1, 6]
    assert np.flatnonzero(decide.survivors(scores, alive, 3, higher=True)).tolist() == [0, 5]
    one = np.zeros(9, bool)
    one[2] = True  # a lone NaN member still goes on: at least one does
    assert np.flatnonzero(decide.survivors(scores, one, 3, higher=False)).tolist() == [2]


def test_pbt_parents_the_bottom_quantile_copies_the_drawn_top_member():
    scores = np.array([0.1, 0.9, 0.5, 0.2, 0.8, 0.3, 0.7, 0.4])  # best: 0, 3, then 5 ...; worst: 1, 4
    draws = np.array([0.0, 0.7, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0])
    # quantile 0.25 of 8: 2 copy, from the top 2 [0, 3]: member 1 draws 0.7 -> top[1] = 3, member 4 -> top[0] = 0
    assert decide.pbt_parents(scores, False, 0.25, draws) == {1: 3, 4: 0}
    assert decide.pbt_parents(scores[:1], False, 0.25, draws) == {}


def test_explore_multiplies_resamples_or_steps_to_a_neighbouring_listed_value():
    task = Toy()
    lr = parse_dimension(by_name(task.options)["lr"], "0.01..0.5")
    assert decide.explore(0.1, lr, False, True, 0.0) == pytest.approx(0.125)
    assert decide.explore(0.1, lr, False, False, 0.0) == pytest.approx(0.08)
    assert decide.explore(0.45, lr, False, True, 0.0) == 0.5  # kept in the range
    assert decide.explore(0.1, lr, True, True, 0.5) == pytest.approx(np.sqrt(0.01 * 0.5))  # log-uniform midpoint
    listed = parse_dimension(by_name(task.options)["lr"], "0.01,0.1,0.3")
    assert decide.explore(0.1, listed, False, True, 0.0) == 0.3 and decide.explore(0.1, listed, False, False, 0) == 0.01


def test_sampling_is_quasi_random_log_uniform_and_repeatable():
    task = Toy()
    space = search_space(task.options, {"lr": parse_dimension(by_name(task.options)["lr"], "1e-4..1e-1"),
                                        "offset": parse_dimension(by_name(task.options)["offset"], "0,1")})
    a, b = sample(space, 64, seed=3), sample(space, 64, seed=3)
    assert a == b and a != sample(space, 64, seed=4)
    logs = np.log10([p["lr"] for p in a])
    assert logs.min() >= -4 and logs.max() <= -1
    assert np.histogram(logs, bins=3, range=(-4, -1))[0].min() >= 18  # every decade about a third
    assert sorted({p["offset"] for p in a}) == [0.0, 1.0]
    members = population(task, space, 8, seed=3)
    assert len({m.seed for m in members}) == 8 and len({json.dumps(m.static) for m in members}) == 2


# ----------------------------------------------------------------------------- halving on the toy
def test_halving_prunes_as_worked_out_by_hand_and_the_program_shrinks():
    lrs = [0.05, 0.3, 0.9, 0.4, 0.6, 0.2, 0.36, 0.1, 0.5]
    task, members = toy_members(lrs)
    r = run_search(task, members, toy_space(task), SearchOptions("halving", eta=3, min_epochs=2), progress=False,
                   engine=ALWAYS_SHRINK)
    # |lr - 0.35|: 0.36 (6) .01, 0.3 (1) .05, 0.4 (3) .05, 0.2 (5) .15, 0.5 (8) .15, 0.6 (4) .25, ...
    # rung at epoch 2: 9 -> 3 kept: 6, then the tie between 1 and 3 at .05 (float32: 0.35 - 0.3 is
    # 0.04999999 and 0.4 - 0.35 is 0.05000001), so 1 and 3; epoch 6: 3 -> 1 kept: 6
    assert [d["epoch"] for d in r.decisions] == [2, 6]
    assert r.decisions[0]["kept"] == [1, 3, 6] and r.decisions[1]["kept"] == [6]
    assert r.best == 6
    expected_stop = {0: 2, 2: 2, 4: 2, 5: 2, 7: 2, 8: 2, 1: 6, 3: 6, 6: 12}
    assert {i: int(s) for i, s in enumerate(r.final["stop_epoch"])} == expected_stop
    assert [s for s in r.status] == ["max_epochs" if i == 6 else "pruned" for i in range(9)]
    assert r.reached.tolist() == [0, 1, 0, 1, 0, 0, 2, 0, 0]
    # frozen at the rung: w = lr x the epochs it trained
    np.testing.assert_allclose(r.final["w"], np.float32(lrs) * np.array([expected_stop[i] for i in range(9)]),
                               rtol=1e-6)
    # pruned curves hold their rung's value afterwards
    assert np.all(r.curves["val_loss"][0, 2:] == r.curves["val_loss"][0, 1])
    # the program shrank: 9 members, then 4 (3 running, a power of two), then 1
    assert r.groups[0]["repacks"] == [(2, 4), (6, 1)]
    assert {c[2] for c in r.groups[0]["compiled"] if c[0] == "chunk"} == {9, 4, 1}
    assert r.member_epochs == 6 * 2 + 2 * 6 + 12 and r.full_epochs == 9 * 12


def test_hyperband_brackets_count_in_integers_at_exact_powers():
    # 243 = 3^5: rungs 1, 3, 9, 27, 81 below it, so s_max = 5 and six brackets (a float log gives 4.999...)
    assert [(s, n) for s, n, _ in decide.brackets(1, 3, 243)] == [(5, 243), (4, 98), (3, 41), (2, 18), (1, 9), (0, 6)]
    assert decide.brackets(1, 3, 243)[1][2] == [3, 9, 27, 81]
    assert [(s, n, r) for s, n, r in decide.brackets(1, 2, 8)] == [(3, 8, [1, 2, 4]), (2, 6, [2, 4]), (1, 4, [4]),
                                                                (0, 4, [])]
    # the default: three rungs from the budget / eta^3, four brackets of 27, 12, 6 and 4 members
    o = SearchOptions("hyperband").check(90, 27)
    assert (o.min_epochs, o.rungs, o.population_size(90, 27)) == (3, 3, 49)
    assert o.decisions(90, 49) == [3, 9, 27] and o.bracket_of(90).tolist() == [3] * 27 + [2] * 12 + [1] * 6 + [0] * 4


def test_hyperband_prunes_each_bracket_at_its_own_rungs_as_worked_out_by_hand():
    # eta 3 from epoch 2 over 12 epochs: halving's rungs 2, 6, so brackets s = 2 (9 members, rungs 2 and 6),
    # s = 1 (ceil(3 x 3 / 2) = 5 members, rung 6) and s = 0 (3 members, no rung), all in one program
    b2 = [0.05, 0.3, 0.9, 0.4, 0.6, 0.2, 0.36, 0.1, 0.5]  # as in the halving test: kept 1, 3, 6 then 6
    b1 = [0.33, 0.8, 0.3, 0.45, 0.15]  # |lr - 0.35|: .02, .45, .05, .10, .20: member 9 goes on at 6
    b0 = [0.7, 0.351, 0.25]  # trained to the budget: member 15 (.001) is the best of every finalist
    task, members = toy_members(b2 + b1 + b0)
    r = run_search(task, members, toy_space(task), SearchOptions("hyperband", eta=3, min_epochs=2), progress=False,
                   engine=ALWAYS_SHRINK)
    assert r.bracket.tolist() == [2] * 9 + [1] * 5 + [0] * 3
    assert [d["epoch"] for d in r.decisions] == [2, 6]
    assert r.decisions[0]["brackets"] == [{"bracket": 2, "entered": 9, "kept": [1, 3, 6]}]
    assert r.decisions[1]["brackets"] == [{"bracket": 2, "entered": 3, "kept": [6]},
                                          {"bracket": 1, "entered": 5, "kept": [9]}]
    assert r.best == 15
    stop = {0: 2, 2: 2, 4: 2, 5: 2, 7: 2, 8: 2, 1: 6, 3: 6, 6: 12, 9: 12, 10: 6, 11: 6, 12: 6, 13: 6,
            14: 12, 15: 12, 16: 12}
    assert {i: int(s) for i, s in enumerate(r.final["stop_epoch"])} == stop
    assert [i for i, s in enumerate(r.status) if s != "pruned"] == [6, 9, 14, 15, 16]
    assert r.reached.tolist() == [0, 1, 0, 1, 0, 0, 2, 0, 0] + [1, 0, 0, 0, 0] + [0, 0, 0]
    np.testing.assert_allclose(r.final["w"], np.float32(b2 + b1 + b0) * np.array([stop[i] for i in range(17)]),
                               rtol=1e-6)
    # one program: 17 members, then 16 (11 running after epoch 2), then 8 (5 running after epoch 6)
    assert r.groups[0]["repacks"] == [(2, 16), (6, 8)]
    assert {c[2] for c in r.groups[0]["compiled"] if c[0] == "chunk"} == {17, 16, 8}
    assert r.brackets() == [
        {"bracket": 2, "members": list(range(9)), "rungs": [2, 6], "member_epochs": 6 * 2 + 2 * 6 + 12, "best": 6},
        {"bracket": 1, "members": list(range(9, 14)), "rungs": [6], "member_epochs": 4 * 6 + 12, "best": 9},
        {"bracket": 0, "members": [14, 15, 16], "rungs": [], "member_epochs": 3 * 12, "best": 15}]
    with pytest.raises(SearchError, match="take 17 members, not 9"):
        run_search(task, members[:9], toy_space(task), SearchOptions("hyperband", eta=3, min_epochs=2),
                   progress=False)


def test_a_population_larger_than_one_program_runs_in_waves_and_decides_as_one_program():
    """Three waves of three members (as if memory held three): each trains to the rung, parked on
    the host while the others do; the rung ranks all nine together, as one program's does."""
    lrs = [0.05, 0.3, 0.9, 0.4, 0.6, 0.2, 0.36, 0.1, 0.5]
    task, members = toy_members(lrs)
    options = SearchOptions("halving", eta=3, min_epochs=2)
    one = run_search(task, members, toy_space(task), options, progress=False, engine=EngineOptions(plan=MAP))
    waves = run_search(task, members, toy_space(task), options, progress=False,
                       engine=EngineOptions(plan=MAP, max_wave=3))
    assert [d["kept"] for d in waves.decisions] == [d["kept"] for d in one.decisions] == [[1, 3, 6], [6]]
    assert waves.best == one.best == 6 and waves.reached.tolist() == one.reached.tolist()
    assert [d["sizes"] for d in waves.decisions][0] == [3, 3, 3]  # three programs of three members
    for part in ("curves", "final"):
        for k, v in getattr(one, part).items():
            np.testing.assert_array_equal(getattr(waves, part)[k], v, err_msg=k)
    assert waves.member_epochs == one.member_epochs


def test_a_search_under_auto_times_the_plans_on_its_first_chunk_and_decides_as_under_a_forced_plan():
    lrs = [0.05, 0.3, 0.9, 0.4, 0.6, 0.2, 0.36, 0.1, 0.5]
    task, members = toy_members(lrs)
    options = SearchOptions("halving", eta=3, min_epochs=2)
    forced = run_search(task, members, toy_space(task), options, progress=False, engine=EngineOptions(plan=MAP))
    auto = run_search(task, members, toy_space(task), options, progress=False,
                      engine=EngineOptions(plan=None, probe_gain=float("inf")))  # time every candidate
    assert auto.groups[0]["plan_source"] == "probed" and auto.groups[0]["plan"] in ("vmap", "map", "hybrid:2",
                                                                                   "hybrid:4", "hybrid:8")
    assert {c[0] for c in auto.groups[0]["compiled"]} >= {"chunk"}
    assert [d["kept"] for d in auto.decisions] == [d["kept"] for d in forced.decisions]
    np.testing.assert_array_equal(auto.final["w"], forced.final["w"])


def test_pbt_over_waves_is_one_line_naming_the_population():
    task, members = toy_members([0.1, 0.2, 0.3, 0.4])
    with pytest.raises(SearchError, match="PBT copies states within one program") as e:
        run_search(task, members, toy_space(task), SearchOptions("pbt", pbt_every=4), progress=False,
                   engine=EngineOptions(plan=MAP, max_wave=2))
    assert e.value.option == "members"


def test_a_program_shrinks_again_with_frozen_fillers_from_the_running_program():
    lrs = [0.35 + 0.6 * (1 - i / 81) for i in range(81)]  # the higher the index, the better
    task, members = toy_members(lrs, epochs=30)
    r = run_search(task, members, toy_space(task), SearchOptions("halving", eta=3, min_epochs=1), progress=False,
                   engine=ALWAYS_SHRINK)
    # 81 -> 27 running (54..80) in a program of 32 (fillers 0..4) -> 9 running (72..80) in 16: its 7 frozen
    # fillers must come from that program of 32, not from members left out of it (5, 6) -> 3 in 4 -> 1
    assert r.groups[0]["repacks"] == [(1, 32), (3, 16), (9, 4), (27, 1)]
    assert [d["kept"] for d in r.decisions][:2] == [list(range(54, 81)), list(range(72, 81))]
    assert r.best == 80


def test_halving_ranks_every_static_configuration_together():
    lrs = [0.35, 0.3, 0.2, 0.1, 0.36, 0.33, 0.5, 0.9]
    offsets = [0.0, 0.0, 0.0, 0.0, 0.1, 0.1, 0.1, 0.1]  # a second program, 0.1 worse everywhere
    task, members = toy_members(lrs, offsets)
    space = search_space(task.options, {"lr": parse_dimension(by_name(task.options)["lr"], "0.05..0.95"),
                                        "offset": parse_dimension(by_name(task.options)["offset"], "0,0.1")})
    r = run_search(task, members, space, SearchOptions("halving", eta=2, min_epochs=2), progress=False,
                   engine=ALWAYS_SHRINK)
    # scores: 0: .00, 1: .05, 2: .15, 3: .25, 4: .11, 5: .12, 6: .25, 7: .65 (+ 1/(e+1) for all)
    # epoch 2: keep 4 -> 0, 1, 4, 5; epoch 4: keep 2 -> 0, 1; epoch 8: keep 1 -> 0
    assert [d["kept"] for d in r.decisions] == [[0, 1, 4, 5], [0, 1], [0]]
    assert r.best == 0
    assert [g["members"] for g in r.groups] == [4, 4]
    assert r.groups[1]["repacks"][-1] == (4, 1)  # the second program emptied out (one frozen slot kept)


# ----------------------------------------------------------------------------- PBT on the toy
def test_pbt_copies_the_best_state_and_explores_its_numbers_as_worked_out_by_hand():
    lrs = [0.05, 0.3, 0.9, 0.4, 0.6, 0.2, 0.36, 0.1]
    task, members = toy_members(lrs, epochs=8)
    options = SearchOptions("pbt", pbt_every=4, quantile=0.25, resample=0.0)
    r = run_search(task, members, toy_space(task), options, progress=False)
    # at epoch 4, |lr - 0.35|: best 6 (.01), 1 (.05, float32 below 3's); worst 2 (.55), 0 (.30)
    keys = np.asarray(member_keys(range(8)))
    draws = _draws(keys, 4, 4).astype(np.float32)
    top = [6, 1]
    want = {c: top[min(int(draws[c, 0] * 2), 1)] for c in (0, 2)}
    assert [(e["member"], e["parent"], e["epoch"]) for e in r.lineage] == [(c, want[c], 4) for c in (0, 2)]
    for e in r.lineage:  # explore without resampling: the parent's lr x 0.8 or x 1.25
        parent_lr = np.float32(lrs[e["parent"]])
        assert e["parent_numbers"]["lr"] == pytest.approx(parent_lr)
        factor = 1.25 if draws[e["member"], 2] < 0.5 else 0.8
        assert e["new"]["lr"] == pytest.approx(min(parent_lr * factor, 0.95), rel=1e-6)
        # the child's carry is its parent's after 4 epochs, then 4 epochs at its new lr
        assert r.final["w"][e["member"]] == pytest.approx(4 * parent_lr + 4 * np.float32(e["new"]["lr"]), rel=1e-5)
        assert r.numbers["lr"][e["member"]] == np.float32(e["new"]["lr"])
        # the schedule its state trained under: the parent's lr, then its own new one
        from jaxlabs.search.report import schedule

        assert schedule(r, e["member"])["lr"] == [(0, pytest.approx(float(parent_lr))),
                                                  (4, pytest.approx(e["new"]["lr"]))]
    untouched = [i for i in range(8) if i not in want]
    np.testing.assert_allclose(r.final["w"][untouched], 8 * np.float32(lrs)[untouched], rtol=1e-6)
    assert all(s == "max_epochs" for s in r.status) and r.member_epochs == 64
    assert [e for e, _ in r.history] == [0, 4]


def test_a_search_needs_a_validation_metric_and_one_budget():
    from jaxlabs.search.run import validation_metric

    with pytest.raises(SearchError, match="no validation metric"):
        validation_metric(Toy(), ["loss", "test_loss"])
    task, members = toy_members([0.1, 0.2], epochs=12)
    members.append(Member("x", task.resolve_static(epochs=10), task.hparams(lr=0.3), 9))
    with pytest.raises(SearchError, match="same budget"):
        run_search(task, members, toy_space(task), SearchOptions("halving", min_epochs=2), progress=False)


# ----------------------------------------------------------------------------- the command
LAB_A = ["--n", "60", "--width", "8", "--depth", "2", "--lr", "1e-3..0.1", "--tolerance", "0"]


@pytest.mark.parametrize("args, flag", [
    (["--method", "grid"], "--method"),
    (["--eta", "1"], "--eta"),
    (["--lr", "0.1..0.01"], "--lr"),
    (["--lr", "0..0.1"], "--lr"),
    (["--activation", "relu..tanh"], "--activation"),
    (["--width", "8..64"], "--width"),
    (["--epochs", "50", "--min-epochs", "5", "--rungs", "4"], "--rungs"),
    (["--epochs", "50", "--min-epochs", "50"], "--min-epochs"),
    (["--epochs", "50,100"], "--epochs"),
    (["--lr", "abc"], "--lr"),
    (["--method", "pbt", "--epochs", "50", "--pbt-every", "60"], "--pbt-every"),
    (["--method", "pbt", "--quantile", "0.7"], "--quantile"),
    (["--subset", "0.5"], "--subset"),
    (["--members", "9"], "--members"),
])
def test_bad_input_is_one_line_exit_2_and_out_untouched(tmp_path, capsys, args, flag):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        search_cmd.main([*args, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert flag in err, err
    assert not out.exists()


def test_the_command_writes_the_report_the_records_and_the_figures(tmp_path, capsys):
    out = tmp_path / "halving"
    assert search_cmd.main([*LAB_A, "--epochs", "90", "--method", "halving", "--members", "9", "--checkpoint-every", "0",
                            "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "best: member" in printed and "member-epochs" in printed
    res = json.loads((out / "results.json").read_text())
    assert res["metric"] == "val_mse" and res["test_metric"] == "test_mse"
    assert [d["epoch"] for d in res["decisions"]] == [10, 30]  # 90 // 3**2, x 3
    statuses = [m["status"] for m in res["members"]]
    assert statuses.count("pruned") == 8 and res["best"]["member"] == next(
        m["member"] for m in res["members"] if m["status"] != "pruned")
    assert res["cost"]["member_epochs"] == 9 * 10 + 3 * 20 + 60
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].startswith("member,seed,lr,status,rungs_reached") and len(rows) == 10
    report = (out / "report.md").read_text()
    assert "## Best setting found" in report and "member-epochs" in report and "| 10 | 9 | 3 |" in report
    assert (out / "search_curves.png").stat().st_size > 10_000 and (out / "report.html").is_file()
    with np.load(out / "curves.npz") as z:
        assert z["curves/val_mse"].shape == (9, 90)
    # TensorBoard: a run per member, its curve up to its stop, pruned members marked with their rungs
    runs = read_runs(out / "tensorboard" / "fit-log2cos-search-halving")
    assert len(runs) == 9
    by_member = {m["member"]: m for m in res["members"]}
    for run, data in runs.items():
        member = next(m for m in by_member.values() if run.endswith(f"seed{m['seed']}"))
        steps, _ = data["scalars"]["val_mse"]
        assert steps.max() == member["epochs_trained"], run
        assert data["scalars"]["final/pruned"][1][-1] == float(member["status"] == "pruned")
        assert data["scalars"]["final/rungs_passed"][1][-1] == member["rungs_reached"]

    pbt = tmp_path / "pbt"
    assert search_cmd.main([*LAB_A, "--epochs", "40", "--members", "8", "--method", "pbt", "--pbt-every", "10",
                            "--checkpoint-every", "0", "--no-progress", "--out", str(pbt)]) == 0
    res = json.loads((pbt / "results.json").read_text())
    assert len(res["lineage"]) == 3 * 2 and (pbt / "pbt_schedules.png").is_file()
    best_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("best: member"))
    assert ": trained under lr " in best_line and "its own first sample: lr=" in best_line, best_line
    assert all(m["status"] != "pruned" for m in res["members"])


# ----------------------------------------------------------------------------- durable and distributed
KILLED = [*LAB_A, "--epochs", "20000", "--plan", "vmap"]


def _same_search(a: Path, b: Path) -> None:
    assert (a / "curves.npz").read_bytes() == (b / "curves.npz").read_bytes()
    assert (a / "results.csv").read_bytes() == (b / "results.csv").read_bytes()
    strip = lambda d: {k: v for k, v in json.loads((d / "results.json").read_text()).items()  # noqa: E731
                       if k not in ("cost", "command", "groups")}
    sa, sb = strip(a), strip(b)
    for d in (*sa["decisions"], *sb["decisions"]):
        d.pop("sizes", None)  # the programs' sizes: multiples of the device count
        d.pop("seconds", None)  # how long deciding took
    assert sa == sb


@pytest.mark.parametrize("method", [["--method", "halving", "--members", "8", "--eta", "2", "--min-epochs", "400"],
                                    ["--method", "pbt", "--members", "8", "--pbt-every", "500"],
                                    ["--method", "hyperband", "--eta", "2", "--min-epochs", "400", "--rungs", "2"]],
                         ids=["halving", "pbt", "hyperband"])
def test_a_search_killed_mid_run_resumes_to_the_same_results(tmp_path, method):
    reference = tmp_path / "reference"
    assert search_cmd.main([*KILLED, *method, "--checkpoint-every", "0", "--no-progress", "--out",
                            str(reference)]) == 0
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "experiments.search", *KILLED, *method, *EVERY, "--no-progress", "--out", str(out)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # past a decision that changed the program: halving's second rung, PBT's second copy
    wait_for(p, lambda: (saved_position(out) or {}).get("start", 0) > 1000)
    p.kill()
    p.wait()
    assert not (out / "results.csv").exists()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "resuming fit-log2cos" in again.stdout and "from epoch" in again.stdout
    _same_search(reference, out)


def test_decisions_are_the_same_on_one_device_and_on_four(tmp_path):
    """Both methods, on one and on four of four simulated devices, in one process (XLA:CPU computes
    otherwise under another forced device count: the same flag for all four runs)."""
    methods = {"halving": ["--method", "halving"], "pbt": ["--method", "pbt", "--pbt-every", "10"]}
    runs = [(name, devices) for name in methods for devices in (1, 4)]
    script = "; ".join(["from experiments import search"] + [
        f"assert search.main({[*LAB_A, '--epochs', '60', '--members', '9', *methods[name], '--plan', 'map', '--devices', str(devices), '--checkpoint-every', '0', '--no-progress', '--out', str(tmp_path / f'{name}-{devices}')]!r}) == 0"  # noqa: E501
        for name, devices in runs])
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4 " + os.environ.get("XLA_FLAGS", "")}
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600,
                       cwd=Path(__file__).resolve().parent.parent)
    assert p.returncode == 0, p.stderr[-3000:]
    for name in methods:
        _same_search(tmp_path / f"{name}-1", tmp_path / f"{name}-4")


def test_two_processes_search_as_one_process_with_two_devices_and_process_0_writes(tmp_path):
    from test_devices import two_processes

    args = [*LAB_A, "--epochs", "40", "--members", "8", "--method", "pbt", "--pbt-every", "10", "--plan", "map",
            "--checkpoint-every", "0", "--no-progress"]
    env = two_processes("experiments.search", args, tmp_path)
    two_devices = dict(env, XLA_FLAGS=f"{env['XLA_FLAGS']} --xla_force_host_platform_device_count=2".strip())
    alone = subprocess.run([sys.executable, "-m", "experiments.search", *args, "--out", str(tmp_path / "alone")],
                           env=two_devices, capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stderr[-2000:]
    _same_search(tmp_path / "p0", tmp_path / "alone")


TINY = {"fit-log2cos": {"n": 60}, "fit-poly": {"n": 60}, "boston": {},
        "mnist-cnn": {"synthetic": 40, "subset": 1.0, "depth": 1, "channels": 2, "hidden": 8},
        "fashion-mlp": {"synthetic": 60, "hidden": 8},
        "cifar-resnet20": {"synthetic": 24, "blocks": 1, "width": 4}}


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_task_gives_a_search_a_validation_metric_under_its_search_defaults(name):
    """A search ranks on validation only: each task logs a validation metric as a search sets it up
    (fashion-mlp and cifar-resnet20 hold out a validation split, which they do not by default)."""
    import jax

    from jaxlabs.search import validation_metric
    from jaxlabs.tasks import get_task
    from jaxlabs.train import init_member

    task = get_task(name)
    static = task.resolve_static(**TINY[name], **task.search_defaults)
    trainer, data = task.build(static)
    hp = {k: np.float32(v) for k, v in task.hparams().items()}
    state = init_member(trainer, jax.random.key(0), hp, jax.tree.map(jnp.asarray, data))
    metric, _ = validation_metric(task, list(state.last_logs))
    assert metric.startswith("val_")
