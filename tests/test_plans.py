"""Plans, waves and compaction: however the engine packs members onto the device, each member's
trajectory is the one it has when trained alone, and auto's choice is visible and cached."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlabs.engine.auto import choose, worth_timing
from jaxlabs.engine.memory import parse_memory
from jaxlabs.engine.options import EngineOptions
from jaxlabs.engine.plans import Plan, parse_plan
from jaxlabs.engine.programs import Programs
from jaxlabs.engine.wave import hybrid_order
from jaxlabs.sweep import member_keys, run_group
from jaxlabs.tasks import get_task
from jaxlabs.train import CONVERGED, DIVERGED, make_train

# the engine tests' tolerance: vmapped, looped and lone members sum in different orders
MEMBER_VS_ALONE_RTOL = 1e-5
PLANS = [Plan("vmap"), Plan("map"), Plan("hybrid", 2)]


def alone(trainer, data, seed, hparams):
    curves, final = jax.jit(make_train(trainer))(jax.random.key(seed), {k: jnp.float32(v) for k, v in hparams.items()},
                                                 data)
    return jax.device_get(curves), jax.device_get(final)


def assert_members_alone(g, trainer, data, seeds, hp, members, curve_names, lone: dict):
    for i in members:
        if i not in lone:  # each member trained alone once per test
            lone[i] = alone(trainer, data, seeds[i], {k: v[i] for k, v in hp.items()})
        curves, _ = lone[i]
        for k in curve_names:
            np.testing.assert_allclose(g.curves[k][i], curves[k], rtol=MEMBER_VS_ALONE_RTOL, atol=1e-7, err_msg=k)


def tiny_task(name, **static):
    task = get_task(name)
    s = task.resolve_static(**static)
    return (task, *task.build(s))


CASES = {
    "mlp": ("fit-log2cos", dict(n=120, width=16, depth=2, epochs=30), {"lr": [0.01, 0.05, 0.01], "tolerance": [0.0] * 3},
            ("loss", "val_mse")),
    # train-mode curves only: the conv bias before BatchNorm has a zero true gradient, and Adam turns
    # its rounding noise into steps of about lr, so eval-mode metrics (running mean vs that bias)
    # depend on summation order; the train loss does not see that bias at all
    "cnn-bn-dropout": ("mnist-cnn", dict(synthetic=40, subset=1.0, depth=1, channels=2, hidden=8, batch_size=8,
                                         epochs=2, batch_norm=True, dropout=0.3), {"lr": [0.01, 0.003, 0.01]},
                       ("loss", "train_acc")),
    "resnet8": ("cifar-resnet20", dict(synthetic=24, blocks=1, width=4, batch_size=8, epochs=2, drop_epoch=1),
                {"lr": [0.1, 0.05, 0.1], "momentum": [0.0, 0.9, 0.0], "weight_decay": [5e-4] * 3},
                ("loss", "test_loss")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_plan_trains_each_member_as_alone(case):
    name, static, hp, curve_names = CASES[case]
    task, trainer, data = tiny_task(name, **static)
    seeds, lone = [0, 1, 2], {}
    for plan in PLANS:
        g = run_group(trainer, data, seeds, hp, progress=False, options=EngineOptions(plan=plan, chunk=task.chunk))
        assert g.plan == str(plan)
        assert_members_alone(g, trainer, data, seeds, hp, (0, 1), curve_names, lone)
        assert g.curves["loss"][0, -1] != g.curves["loss"][1, -1]  # the members differ: the check can fail


def test_a_grid_forced_into_waves_gives_the_one_wave_results():
    task, trainer, data = tiny_task("fit-log2cos", n=120, width=16, depth=2, epochs=40)
    seeds = [0, 1, 2, 3, 4, 5, 6]
    hp = {"lr": [0.01, 0.02, 0.03, 0.04, 0.05, 0.01, 0.1], "tolerance": [0.0, 1e-2, 0, 0, 0, 0, 0]}
    one = run_group(trainer, data, seeds, hp, progress=False, options=EngineOptions(chunk=10))
    programs = Programs(trainer, data, Plan("vmap"))
    full = programs.chunk_bytes(programs.placement.members(np.asarray(member_keys(seeds))),
                                programs.placement.members({k: np.float32(v) for k, v in hp.items()}), 10)
    waves = run_group(trainer, data, seeds, hp, progress=False, options=EngineOptions(chunk=10, memory_limit=int(full * 0.45)))
    assert len(waves.waves) >= 3 and sum(waves.waves) == 7
    assert waves.epochs_run == one.epochs_run
    for k in ("loss", "val_mse"):
        np.testing.assert_allclose(waves.curves[k], one.curves[k], rtol=MEMBER_VS_ALONE_RTOL)
    np.testing.assert_array_equal(waves.final["status"], one.final["status"])
    np.testing.assert_allclose(waves.final["test_mse"], one.final["test_mse"], rtol=MEMBER_VS_ALONE_RTOL)


def test_a_member_that_does_not_fit_says_how_much_it_needs():
    task, trainer, data = tiny_task("fit-log2cos", n=120, width=16, depth=2, epochs=5)
    with pytest.raises(MemoryError, match=r"one member of this group needs [\d.]+ \w+B"):
        run_group(trainer, data, [0, 1], {"lr": [0.01, 0.01], "tolerance": [0.0, 0.0]}, progress=False,
                  options=EngineOptions(memory_limit=4000))  # the data (2.5 KiB) fits, a member does not


def chunk_sizes(g, plan: str | None = None) -> list:
    """The member count of every chunk program a group compiled (under ``plan``, or any)."""
    return [members for p, program, _, members in g.compiled if program == "chunk" and plan in (None, p)]


# auto times every candidate even for these tiny groups (whose training takes well under a second)
PROBE_ALWAYS = dict(probe_gain=float("inf"))
# compaction even for these tiny groups (whose remaining chunks take well under a second)
REPACK_ALWAYS = dict(compact_worth_s=0.0)


def test_compaction_repacks_running_members_and_keeps_every_result():
    task, trainer, data = tiny_task("fit-log2cos", n=120, width=16, depth=2, epochs=60)
    seeds = [0, 1, 2, 3, 4, 5]
    # four members stop early (loose tolerances: epochs 10 and 34; absurd learning rates: NaN at
    # epoch 2), two run on
    hp = {"lr": [0.01, 1e20, 0.01, 1e25, 0.02, 0.01], "tolerance": [1.0, 0.0, 0.6, 0.0, 0.0, 0.0]}
    plain = run_group(trainer, data, seeds, hp, progress=False, options=EngineOptions(chunk=5))
    packed = run_group(trainer, data, seeds, hp, progress=False, options=EngineOptions(chunk=5, compaction=True, **REPACK_ALWAYS))
    status = plain.final["status"]
    assert {CONVERGED, DIVERGED} <= set(status.tolist()) and (status[[4, 5]] != CONVERGED).all()
    np.testing.assert_array_equal(packed.final["status"], status)
    np.testing.assert_array_equal(packed.final["stop_epoch"], plain.final["stop_epoch"])
    for k in ("loss", "val_mse"):  # stopped members keep their held values, running ones their curves
        np.testing.assert_allclose(packed.curves[k], plain.curves[k], rtol=MEMBER_VS_ALONE_RTOL)
    np.testing.assert_allclose(packed.final["test_mse"], plain.final["test_mse"], rtol=MEMBER_VS_ALONE_RTOL)


def test_compaction_compiles_smaller_programs():
    task, trainer, data = tiny_task("fit-log2cos", n=120, width=16, depth=2, epochs=30)
    hp = {"lr": [1e20, 1e22, 1e25, 0.01, 0.01], "tolerance": [0.0] * 5}  # three diverge at once
    g = run_group(trainer, data, [0, 1, 2, 3, 4], hp, progress=False, options=EngineOptions(chunk=5, compaction=True, **REPACK_ALWAYS))
    assert (g.final["status"][:3] == DIVERGED).all()
    assert chunk_sizes(g) == [5, 2]  # 5 members, then the two running ones
    assert [members for _, _, members in g.repacks] == [[3, 4]]


def test_under_map_stopped_members_skip_their_chunks_and_are_not_repacked():
    task, trainer, data = tiny_task("fit-log2cos", n=120, width=16, depth=2, epochs=30)
    # three diverge at epoch 1, one converges early (loose tolerance), one runs on
    hp = {"lr": [1e20, 1e22, 1e25, 0.01, 0.01], "tolerance": [0.0, 0.0, 0.0, 1.0, 0.0]}
    vmapped = run_group(trainer, data, [0, 1, 2, 3, 4], hp, progress=False, options=EngineOptions(chunk=5))
    mapped = run_group(trainer, data, [0, 1, 2, 3, 4], hp, progress=False,
                       options=EngineOptions(chunk=5, plan=Plan("map"), compaction=True, **REPACK_ALWAYS))
    assert chunk_sizes(mapped) == [5] and not mapped.repacks  # skipped in place: no smaller program
    np.testing.assert_array_equal(mapped.final["status"], vmapped.final["status"])
    np.testing.assert_array_equal(mapped.final["stop_epoch"], vmapped.final["stop_epoch"])
    assert (mapped.final["stop_epoch"][:4] <= 10).all()  # four members skip at least four of the six chunks
    for k in ("loss", "val_mse"):  # held values after the stop, as vmapped
        np.testing.assert_allclose(mapped.curves[k], vmapped.curves[k], rtol=MEMBER_VS_ALONE_RTOL)
    np.testing.assert_allclose(mapped.final["test_mse"], vmapped.final["test_mse"], rtol=MEMBER_VS_ALONE_RTOL)


def test_under_hybrid_stopped_members_move_into_skipped_blocks_of_the_same_program():
    task, trainer, data = tiny_task("fit-log2cos", n=120, width=16, depth=2, epochs=30)
    # members 0, 2 and 4 diverge at once: every block of two holds a running member until reordered
    hp = {"lr": [1e20, 0.01, 1e22, 0.02, 1e25, 0.01], "tolerance": [0.0] * 6}
    seeds = [0, 1, 2, 3, 4, 5]
    vmapped = run_group(trainer, data, seeds, hp, progress=False, options=EngineOptions(chunk=5))
    hybrid = run_group(trainer, data, seeds, hp, progress=False,
                       options=EngineOptions(chunk=5, plan=Plan("hybrid", 2), compaction=True))
    assert chunk_sizes(hybrid) == [6]  # no smaller program
    assert hybrid.repacks == [(5, 0, [1, 3, 5, 0, 2, 4])]  # once: then one idle block
    np.testing.assert_array_equal(hybrid.final["status"], vmapped.final["status"])
    for k in ("loss", "val_mse"):
        np.testing.assert_allclose(hybrid.curves[k], vmapped.curves[k], rtol=MEMBER_VS_ALONE_RTOL)
    np.testing.assert_allclose(hybrid.final["test_mse"], vmapped.final["test_mse"], rtol=MEMBER_VS_ALONE_RTOL)


def test_hybrid_order_deals_running_members_over_devices_first():
    running = np.array([1, 0, 0, 0, 1, 0, 0, 1], bool)
    # 2 devices of 4 members, blocks of 2: running 0, 4, 7 -> device 0 gets 0 and 7, device 1 gets 4
    assert hybrid_order(running, 2, 2).tolist() == [0, 7, 1, 2, 4, 3, 5, 6]
    assert hybrid_order(np.array([1, 1, 0, 0], bool), 2, 1) is None  # already an idle block


def test_boston_final_metrics_agree_with_and_without_compaction():
    task, trainer, data = tiny_task("boston", width=8, depth=1, epochs=12)
    hp = {"lr": [1e3, 0.01, 1e4, 1e5], "momentum": [0.0] * 4}  # three diverge early
    plain = run_group(trainer, data, [0, 1, 2, 3], hp, progress=False, options=EngineOptions(chunk=3))
    packed = run_group(trainer, data, [0, 1, 2, 3], hp, progress=False, options=EngineOptions(chunk=3, compaction=True, **REPACK_ALWAYS))
    assert (plain.final["status"][[0, 2, 3]] == DIVERGED).all()
    for k in ("test_mse", "test_mae", "test_r2"):
        np.testing.assert_allclose(packed.final[k][1], plain.final[k][1], rtol=1e-4)


def test_auto_probes_a_long_group_then_caches_its_choice(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXLABS_CACHE_DIR", str(tmp_path))
    task, trainer, data = tiny_task("fit-log2cos", n=120, width=16, depth=2, epochs=40)
    seeds, hp = [0, 1, 2, 3, 4], {"lr": [0.01] * 5, "tolerance": [0.0] * 5}
    g = run_group(trainer, data, seeds, hp, progress=False, plan_key="k", options=EngineOptions(chunk=10, plan=None, **PROBE_ALWAYS))
    assert g.plan_source == "probed" and set(g.probe) == {"vmap", "map"}  # hybrid:4 needs 8 members
    cached = json.loads((tmp_path / "plans.json").read_text())["k"]
    assert cached["plan"] == g.plan == choose(g.probe, cached["compile"], EngineOptions().probe_close)
    assert_members_alone(g, trainer, data, seeds, hp, (0, 4), ("loss", "val_mse"), {})
    again = run_group(trainer, data, seeds, hp, progress=False, plan_key="k",
                      options=EngineOptions(chunk=10, plan=None, **PROBE_ALWAYS))
    assert again.plan_source == "cached" and again.plan == g.plan
    # a cached run trains under its plan from the first chunk: one program
    assert [p for p, program, _, _ in again.compiled if program == "chunk"] == [g.plan]
    # the probe ran the first chunk under each candidate and kept the chosen one's: a cached run
    # computes the same numbers
    np.testing.assert_array_equal(again.curves["loss"], g.curves["loss"])


def test_auto_keeps_the_plan_quickest_to_compile_among_those_within_noise():
    compiles = {"vmap": 1.9, "map": 2.1, "hybrid:4": 4.6}
    # the default sweep as measured: hybrid:4's chunk 2% faster does not pay for its compile
    assert choose({"vmap": 2.67, "map": 2.81, "hybrid:4": 2.61}, compiles, 0.15) == "vmap"
    assert choose({"vmap": 4.24, "map": 3.42, "hybrid:4": 3.91}, compiles, 0.15) == "map"  # 24% faster
    assert choose({"vmap": 1.0, "map": 0.8, "hybrid:4": 0.6}, compiles, 0.15) == "hybrid:4"
    assert choose({"vmap": 1.0, "map": 0.95}, {"vmap": 3.0, "map": 1.0}, 0.15) == "map"  # within noise: cheaper


def test_auto_times_a_plan_only_where_it_might_save_more_than_it_costs():
    options = EngineOptions(plan=None, probe_gain=0.15, probe_close=0.15)
    assert worth_timing(Plan("map"), {"vmap": 1.0}, seconds_left=100.0, cost=3.0, options=options)
    assert not worth_timing(Plan("map"), {"vmap": 1.0}, seconds_left=10.0, cost=3.0, options=options)
    # hybrid batches between vmap and map: timed only where the two differ by more than noise
    assert not worth_timing(Plan("hybrid", 4), {"vmap": 1.0, "map": 0.97}, 1000.0, 5.0, options)
    assert worth_timing(Plan("hybrid", 4), {"vmap": 1.0, "map": 0.7}, 1000.0, 5.0, options)
    assert not worth_timing(Plan("hybrid", 4), {"vmap": 1.0}, 1000.0, 5.0, options)
    # one budget for every candidate: what the earlier ones cost counts against the next
    assert worth_timing(Plan("hybrid", 4), {"vmap": 1.0, "map": 0.7}, 100.0, 5.0, options, spent=9.0)
    assert not worth_timing(Plan("hybrid", 4), {"vmap": 1.0, "map": 0.7}, 100.0, 5.0, options, spent=11.0)


def test_auto_probes_a_classifier_on_its_cheaper_version(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXLABS_CACHE_DIR", str(tmp_path))
    name, static, hp, curve_names = CASES["cnn-bn-dropout"]
    task, trainer, data = tiny_task(name, **static)
    g = run_group(trainer, data, [0, 1, 2], hp, progress=False, plan_key="k",
                  options=EngineOptions(chunk=1, plan=None, **PROBE_ALWAYS))
    assert g.plan_source == "probed" and set(g.probe) == {"vmap", "map"}
    cached = json.loads((tmp_path / "plans.json").read_text())["k"]
    assert g.plan == choose(g.probe, cached["compile"], EngineOptions().probe_close)
    assert_members_alone(g, trainer, data, [0, 1, 2], hp, (0, 1), curve_names, {})


def test_auto_keeps_vmap_for_a_short_group_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXLABS_CACHE_DIR", str(tmp_path))
    task, trainer, data = tiny_task("fit-log2cos", n=120, width=16, depth=2, epochs=20)
    g = run_group(trainer, data, [0, 1], {"lr": [0.01] * 2, "tolerance": [0.0] * 2}, progress=False, plan_key="k", options=EngineOptions(chunk=10, plan=None))
    assert g.plan == "vmap" and g.plan_source.startswith("short group") and not g.probe
    assert not (tmp_path / "plans.json").exists()


def test_bf16_precision_stays_close_to_fp32():
    task, trainer, data = tiny_task("fit-log2cos", n=120, width=16, depth=2, epochs=20)
    hp = {"lr": [0.01, 0.01], "tolerance": [0.0, 0.0]}
    fp32 = run_group(trainer, data, [0, 1], hp, progress=False)
    bf16 = run_group(trainer, data, [0, 1], hp, progress=False, options=EngineOptions(precision="bf16"))
    np.testing.assert_allclose(bf16.curves["loss"], fp32.curves["loss"], rtol=5e-2)


@pytest.mark.parametrize("text,plan", [("auto", None), ("vmap", Plan("vmap")), ("map", Plan("map")),
                                       ("hybrid:8", Plan("hybrid", 8))])
def test_plan_forms(text, plan):
    assert parse_plan(text) == plan


@pytest.mark.parametrize("text", ["hybrid:0", "hybrid", "vmapp", "hybrid:-1", ""])
def test_bad_plans_are_one_line_errors(text):
    with pytest.raises(ValueError, match="auto, vmap, map or hybrid:K"):
        parse_plan(text)


@pytest.mark.parametrize("text,value", [("2GB", 2 * 10**9), ("512MiB", 512 * 2**20), ("1.5e9", 1_500_000_000),
                                        ("100 kb", 100_000)])
def test_memory_forms(text, value):
    assert parse_memory(text) == value


@pytest.mark.parametrize("text", ["2XB", "lots", "-1GB", "0"])
def test_bad_memory_is_a_one_line_error(text):
    with pytest.raises(ValueError, match="memory"):
        parse_memory(text)


BAD_ENGINE_FLAGS = [(["--plan", "hybrid:0"], "--plan"), (["--plan", "fast"], "--plan"),
                    (["--memory-limit", "2XB"], "--memory-limit"), (["--precision", "fp16"], "--precision")]


@pytest.mark.parametrize("command", ["lr_sweep", "reproduce"])
@pytest.mark.parametrize("args,flag", BAD_ENGINE_FLAGS, ids=[" ".join(a) for a, _ in BAD_ENGINE_FLAGS])
def test_bad_engine_flags_are_one_line_exit_2_and_touch_nothing(command, args, flag, capsys, tmp_path):
    from experiments import lr_sweep, reproduce

    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("earlier run")
    main = lr_sweep.main if command == "lr_sweep" else reproduce.main
    base = ["--out", str(out)] if command == "lr_sweep" else ["C-depth", "--quick", "--out", str(out)]
    with pytest.raises(SystemExit) as e:
        main([*base, *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err, err
    assert (out / "results.csv").read_text() == "earlier run" and sorted(p.name for p in out.iterdir()) == ["results.csv"]
