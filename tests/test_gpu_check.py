"""Ready for a GPU without one: the engine's programs lower for CUDA here with no host callback in
a chunk (experiments.gpu_check on a subset), the conv nets' grouped convolutions are where the plans
put them and auto may time the plans without them, and the device suite keeps to its budget and
keeps what it measured when cut off."""
import json
import os
import subprocess
import sys
import time

import jax
import pytest

from experiments import device_suite, gpu_check
from jaxlabs.engine.auto import candidates, worth_timing
from jaxlabs.engine.lowering import check_programs, convolutions, host_callbacks
from jaxlabs.engine.options import EngineOptions
from jaxlabs.engine.plans import Plan
from jaxlabs.tasks import TASKS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*argv, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # gpu_check sets its own
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def tiny(name, backend="cuda"):
    task = TASKS[name](backend=backend)
    return task, *task.build(task.resolve_static(**gpu_check.TINY[name]))


# ------------------------------------------------------------------------------ gpu_check, end to end
def test_gpu_check_lowers_a_conv_net_and_an_mlp_for_cuda_on_one_and_two_devices(tmp_path):
    out = tmp_path / "check.json"
    p = run("experiments.gpu_check", "--tasks", "cifar-resnet20,mnist-scratch", "--plans", "vmap,hybrid:2",
            "--precisions", "bf16", "--json", str(out))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "| cifar-resnet20 | vmap" in p.stdout and "FAILED" not in p.stdout
    rows = json.loads(out.read_text())["rows"]
    # 2 tasks x 2 plans at bf16 on one device, and at fp32 shard_mapped over two
    assert sorted((r["task"], r["plan"], r["precision"], r["devices"]) for r in rows) == sorted(
        [(t, p, "bf16", 1) for t in ("cifar-resnet20", "mnist-scratch") for p in ("vmap", "hybrid:2")]
        + [(t, p, "fp32", 2) for t in ("cifar-resnet20", "mnist-scratch") for p in ("vmap", "hybrid:2")])
    for r in rows:
        assert r["ok"], r["failures"]
        progs = {c["program"]: c for c in r["programs"]}
        # ResNet20 is a classifier: its epoch also lowers as the pieces the engine calls (Slices)
        sliced = {"begin", "slice", "end"} if r["task"] == "cifar-resnet20" else set()
        assert set(progs) == {"init", "chunk", "finish"} | sliced
        assert all(c["platform"] == "cuda" and c["partitions"] == r["devices"] for c in progs.values())
        assert all(progs[p]["size"] > 10_000 for p in ({"init", "chunk", "finish", "slice", "end"} & set(progs)))
        for p in {"chunk", "slice", "end"} & set(progs):
            assert progs[p]["callbacks"] == 0 and progs[p]["callback_targets"] == [], p
        if sliced:  # a slice of training steps groups the members' convolutions as a chunk does
            assert progs["slice"]["largest_group"] == progs["chunk"]["largest_group"]
        assert progs["chunk"]["precisions"] == (["DEFAULT"] if r["precision"] == "bf16" else ["HIGHEST"])
        chunk = progs["chunk"]
        if r["task"] == "mnist-scratch":
            assert chunk["convolutions"] == 0
        else:  # 4 members per device: vmap groups them all, hybrid:2 two at a time
            assert chunk["convolutions"] > 20 and chunk["grouped"] > 20
            assert chunk["largest_group"] == (4 if r["plan"] == "vmap" else 2)


def test_every_task_has_a_tiny_configuration():
    assert set(gpu_check.TINY) == set(TASKS)


@pytest.mark.parametrize("argv, flag", [(["--plans", "auto"], "--plans"), (["--plans", "vmap,sometimes"], "--plans"),
                                        (["--tasks", "mnist-cnn,nope"], "--tasks"), (["--precisions", "fp64"], "--precisions"),
                                        (["--devices", "-1"], "--devices"), (["--tasks", ""], "--tasks")])
def test_gpu_check_rejects_a_bad_flag_in_one_line(argv, flag, capsys):
    with pytest.raises(SystemExit) as e:
        gpu_check.main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and flag in err


# ------------------------------------------------------------------------------ grouped convolutions and auto
def test_auto_may_time_the_plans_that_keep_a_conv_nets_convolutions_ungrouped():
    """Under vmap a conv net's 8 members are one grouped convolution of 8 groups; auto's candidates
    for 8 members are vmap, map (no grouped convolution) and hybrid:4 (groups of 4), and map is worth
    timing once it might save more than it costs."""
    task, trainer, data = tiny("mnist-cnn")
    plans = candidates(8)
    assert plans == [Plan("vmap"), Plan("map"), Plan("hybrid", 4)]
    largest = {}
    for plan in plans:
        checks = {c.program: c for c in check_programs(trainer, data, plan, task.hparams(), 8)}
        assert all(c.lowered for c in checks.values()), [c.error for c in checks.values()]
        chunk = checks["chunk"]
        assert chunk.convolutions > 0 and chunk.callbacks == 0
        largest[str(plan)] = chunk.largest_group if chunk.grouped else 1
    assert largest == {"vmap": 8, "map": 1, "hybrid:4": 4}
    assert worth_timing(Plan("map"), {"vmap": 1.0}, 100.0, 5.0, EngineOptions())


def test_the_cpu_convolution_is_never_grouped_so_the_task_builds_for_the_platform_asked():
    """backend="cpu" builds conv_cpu (members one after another under vmap): no grouped convolution
    even under vmap, unlike the lax.conv a GPU gets (the test above)."""
    task, trainer, data = tiny("mnist-cnn", backend="cpu")
    chunk = {c.program: c for c in check_programs(trainer, data, Plan("vmap"), task.hparams(), 4)}["chunk"]
    assert chunk.lowered and chunk.convolutions > 0 and chunk.grouped == 0


def test_a_host_callback_inside_the_training_loop_is_found():
    task, trainer, data = tiny("fit-log2cos")

    def epoch(carry, hp, d, e, key, tx):
        jax.debug.callback(lambda e: None, e)  # one Python round trip per epoch
        return trainer.epoch(carry, hp, d, e, key, tx)

    noisy = trainer._replace(epoch=epoch)  # NamedTuple's public copy-with-changes
    cuda = {c.program: c for c in check_programs(noisy, data, Plan("vmap"), task.hparams(), 2)}
    assert cuda["chunk"].callbacks == cuda["chunk"].callbacks_in_loop == 1
    assert not cuda["chunk"].lowered and "lowering platform cuda" in cuda["chunk"].error
    assert cuda["init"].lowered and cuda["init"].callbacks == 0
    cpu = {c.program: c for c in check_programs(noisy, data, Plan("vmap"), task.hparams(), 2, platform="cpu")}
    assert cpu["chunk"].lowered and any("callback" in t for t in cpu["chunk"].callback_targets)
    clean = {c.program: c for c in check_programs(trainer, data, Plan("map"), task.hparams(), 2)}
    assert clean["chunk"].lowered and clean["chunk"].callbacks == 0


def test_module_text_readers():
    text = ("%1 = stablehlo.convolution(%a, %b) dim_numbers = [b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f], "
            "window = {} {batch_group_count = 1 : i64, feature_group_count = 6 : i64} : (...)\n"
            "%2 = stablehlo.convolution(%a, %b) {batch_group_count = 3 : i64, feature_group_count = 1 : i64}\n"
            "%3 = stablehlo.convolution(%a, %b) {batch_group_count = 1 : i64, feature_group_count = 1 : i64}\n")
    assert convolutions(text) == (3, 2, 6)
    assert convolutions("%0 = stablehlo.add %a, %b") == (0, 0, 1)
    jaxpr = jax.make_jaxpr(lambda x: jax.lax.scan(lambda c, _: (jax.pure_callback(lambda v: v, c, c), None),
                                                  x, None, 3)[0] + jax.pure_callback(lambda v: v, x, x))(1.0)
    assert host_callbacks(jaxpr.jaxpr) == (2, 1)


# ------------------------------------------------------------------------------ the device suite
def test_a_part_gets_its_share_of_the_time_left_and_a_row_starts_only_if_it_fits():
    parts = device_suite.DEVICE
    assert sum(p.share for p in parts) == pytest.approx(1.0)
    assert device_suite.part_deadline(0.0, 480.0, parts) == pytest.approx(480 * parts[0].share)
    # time left by the first part goes to the rest, in their proportions; the last gets all that is left
    later = device_suite.part_deadline(50.0, 480.0, parts[1:])
    assert later == pytest.approx(50 + 430 * parts[1].share / (parts[1].share + parts[2].share))
    assert device_suite.part_deadline(300.0, 480.0, parts[2:]) == 480.0
    assert device_suite.part_deadline(500.0, 480.0, parts[2:]) == 500.0  # past the deadline: nothing left
    assert device_suite.fits(10.0, 40.0, 30.0) and not device_suite.fits(10.0, 40.0, 30.5)
    # the rows: Lab A at 1 / 64 / 1024, each conv net under vmap, map, hybrid and auto
    assert [m for m, _ in parts[0].rows][:3] == [1, 64, 1024]
    for conv in parts[1:]:
        assert {plan.split(":")[0] for _, plan in conv.rows} == {"vmap", "map", "hybrid", "auto"}
    assert [(p.name, len(p.rows)) for p in device_suite.TINY] == [(p.name, len(p.rows)) for p in parts]


def test_tiny_device_suite_keeps_to_its_budget(tmp_path):
    out = tmp_path / "suite.json"
    budget = 25
    t0 = time.monotonic()
    p = run("experiments.device_suite", "--tiny", "--budget-s", str(budget), "--json", str(out))
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["done"] and result["budget_s"] == budget
    assert len(result["rows"]) >= 1 and result["skipped"]  # the first row fits; 25 s cannot hold all 12
    assert len(result["rows"]) + len(result["skipped"]) == sum(len(p.rows) for p in device_suite.TINY)
    for r in result["rows"]:
        assert r["rate"] > 0 and r["compile_s"] > 0 and r["wall_s"] >= r["train_s"]
    # a row starts only within the budget, so the run ends within it plus its longest row
    assert result["elapsed_s"] <= budget + max(r["wall_s"] for r in result["rows"]) + 5
    assert "| Lab A | 1 | vmap |" in p.stdout and time.monotonic() - t0 < 600


def test_a_device_suite_cut_off_keeps_the_rows_it_measured(tmp_path):
    out = tmp_path / "suite.json"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.Popen([sys.executable, "-m", "experiments.device_suite", "--tiny", "--json", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (out.exists() and json.loads(out.read_text())["rows"]):
            time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()
    result = json.loads(out.read_text())  # written whole after every row: never half a file
    assert not result["done"] and result["rows"][0]["part"] == "Lab A" and result["rows"][0]["members"] == 1


@pytest.mark.parametrize("argv, words", [([], "no accelerator"), (["--tiny", "--budget-s", "0"], "--budget-s")])
def test_device_suite_refuses_in_one_line(argv, words, capsys):
    if not argv and jax.default_backend() != "cpu":
        pytest.skip("an accelerator is here: the suite would run")
    with pytest.raises(SystemExit) as e:
        device_suite.main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and words in err
