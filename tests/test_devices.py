"""Members split over several devices (simulated CPU devices, in a subprocess: the device count is
fixed when JAX starts): each member's results equal the one-device run's."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

# the engine tests' tolerance: members split over devices sum in other orders
MEMBER_VS_ALONE_RTOL = 1e-5

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from jaxlabs.sweep import EngineOptions, run_group
    from jaxlabs.tasks import get_task

    out = {"devices": len(jax.devices())}
    cases = {
        "fit-log2cos": (dict(n=120, width=16, depth=2, epochs=30), [0, 1, 2, 3, 4],
                        {"lr": [0.01, 0.05, 0.02, 1e25, 0.01], "tolerance": [0, 0.8, 0, 0, 0]}, 10),
        "mnist-cnn": (dict(synthetic=40, subset=1.0, depth=1, channels=2, hidden=8, batch_size=8, epochs=2,
                           dropout=0.3), [0, 1, 2], {"lr": [0.01, 0.003, 0.01]}, 1),
    }
    for name, (static, seeds, hp, chunk) in cases.items():
        task = get_task(name)
        trainer, data = task.build(task.resolve_static(**static))
        for label, devices in (("one", jax.devices()[:1]), ("all", jax.devices())):
            g = run_group(trainer, data, seeds, hp, progress=False,
                          options=EngineOptions(chunk=chunk, devices=len(devices), compaction=True))
            out[f"{name}/{label}"] = {"status": g.final["status"].tolist(), "devices": g.devices,
                                      "curves": {k: v.tolist() for k, v in g.curves.items()},
                                      "final": {k: np.asarray(v).tolist() for k, v in g.final.items()
                                                if np.ndim(v) == 1}}
    json.dump(out, sys.stdout)
""")


def run_with_devices(n: int, script: str, timeout: int = 600) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}".strip()
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])  # the script prints its JSON last


@pytest.fixture(scope="module")
def four_devices():
    return run_with_devices(4, SCRIPT)


@pytest.mark.parametrize("task", ["fit-log2cos", "mnist-cnn"])
def test_members_split_over_four_devices_equal_the_one_device_run(four_devices, task):
    assert four_devices["devices"] == 4
    one, split = four_devices[f"{task}/one"], four_devices[f"{task}/all"]
    assert one["devices"] == 1 and split["devices"] == 4
    assert split["status"] == one["status"]  # 5 and 3 members: padded to 8 and 4, never reported
    assert len(split["status"]) == len(one["status"])
    for k, v in one["curves"].items():
        np.testing.assert_allclose(split["curves"][k], v, rtol=MEMBER_VS_ALONE_RTOL, atol=1e-7, err_msg=k)
    for k, v in one["final"].items():
        np.testing.assert_allclose(split["final"][k], v, rtol=MEMBER_VS_ALONE_RTOL, atol=1e-7, err_msg=k)


MAP_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from jaxlabs.engine.plans import Plan
    from jaxlabs.sweep import EngineOptions, run_group
    from jaxlabs.tasks import get_task

    task = get_task("fit-log2cos")
    trainer, data = task.build(task.resolve_static(n=120, width=16, depth=2, epochs=60))
    hp = {"lr": [0.01, 0.05, 0.02, 1e25, 0.01, 0.03, 0.1], "tolerance": [0, 0.8, 0, 0, 0, 0.05, 0]}
    out = {}
    for label, kw in (("one device", dict(devices=1)), ("four devices", dict(devices=4)),
                      ("waves of two", dict(devices=1, max_wave=2)), ("waves over devices", dict(devices=4, max_wave=4)),
                      ("compaction", dict(devices=4, compaction=True, compact_worth_s=0.0))):
        g = run_group(trainer, data, list(range(7)), hp, progress=False,
                      options=EngineOptions(plan=Plan("map"), chunk=10, **kw))
        out[label] = {"curves": {k: v.tobytes().hex() for k, v in g.curves.items()},
                      "final": {k: np.asarray(v).tobytes().hex() for k, v in g.final.items()}, "waves": g.waves}
    json.dump(out, sys.stdout)
""")


def test_map_is_bit_identical_across_device_counts_waves_and_compaction():
    """The README's determinism promise: under map each member's program is the member's alone,
    so how members are split (devices, waves, compaction) changes no bit of any result."""
    runs = run_with_devices(4, MAP_SCRIPT)
    assert runs["waves of two"]["waves"] == [2, 2, 2, 1] and runs["waves over devices"]["waves"] == [4, 3]
    reference = runs.pop("one device")
    for label, r in runs.items():
        assert r["curves"] == reference["curves"], label
        assert r["final"] == reference["final"], label


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LAB_A = ["--n", "60", "--epochs", "30", "--width", "8", "--depth", "2", "--seeds", "3", "--lr", "0.01,0.05",
         "--no-progress", "--plan", "vmap", "--no-tensorboard"]


def two_processes(module: str, args: list[str], tmp_path) -> dict:
    """``module`` run by two processes joined on 127.0.0.1 (each --out tmp_path/p<i>); both must
    succeed and only process 0 may write. The environment they ran in."""
    env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", ""))
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-m", module, *args, "--out", str(tmp_path / f"p{i}"),
                               "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i),
                               "--connect-timeout", "60"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert not (tmp_path / "p1").exists()  # only process 0 writes
    return env


def test_two_processes_train_one_grid_and_process_0_writes_it(tmp_path):
    import csv

    env = two_processes("experiments.lr_sweep", LAB_A, tmp_path)
    # one process with two (simulated) devices: the same programs as the two processes' halves
    two_devices = dict(env, XLA_FLAGS=f"{env['XLA_FLAGS']} --xla_force_host_platform_device_count=2".strip())
    alone = subprocess.run([sys.executable, "-m", "experiments.lr_sweep", *LAB_A, "--out", str(tmp_path / "alone")],
                           env=two_devices, capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stderr[-2000:]
    two = list(csv.DictReader(open(tmp_path / "p0" / "results.csv")))
    one = list(csv.DictReader(open(tmp_path / "alone" / "results.csv")))
    timing = [k for k in one[0] if k.endswith("_s")]  # compile and run times differ, nothing else may
    assert [{k: v for k, v in r.items() if k not in timing} for r in two] == \
        [{k: v for k, v in r.items() if k not in timing} for r in one]
    assert json.load(open(tmp_path / "p0" / "results.json"))["timing"][0]["devices"] == 2


def test_processes_follow_process_0s_plan_choice(tmp_path):
    """auto picks programs from a cache and timings that differ between processes; processes run
    their programs in step, so every process follows process 0's view: here only process 0's cache
    holds a choice (map), and both processes train under it."""
    from jaxlabs.engine.auto import cache_key
    from jaxlabs.tasks import get_task

    static = get_task("fit-log2cos").resolve_static(n=60, epochs=30, width=8, depth=2)
    caches = [tmp_path / "cache0", tmp_path / "cache1"]
    for c in caches:
        c.mkdir()
    (caches[0] / "plans.json").write_text(json.dumps({cache_key("fit-log2cos", static, 6, "fp32", 2): {
        "plan": "map", "probe": {"map": 0.1, "vmap": 0.2}}}))
    auto = [a if a != "vmap" else "auto" for a in LAB_A]
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "experiments.lr_sweep", *auto, "--out", str(tmp_path / f"p{i}"),
                               "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i),
                               "--connect-timeout", "60"], env=dict(os.environ, JAXLABS_CACHE_DIR=str(caches[i])),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    timing = json.load(open(tmp_path / "p0" / "results.json"))["timing"][0]
    assert (timing["plan"], timing["plan_source"], timing["devices"]) == ("map", "cached", 2)
    assert "trained its share of the members (plan map (cached" in outs[1][0]  # process 1 ran map too


def test_a_process_that_cannot_reach_the_coordinator_stops_with_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "experiments.lr_sweep", *LAB_A, "--out", str(tmp_path / "o"),
                        "--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2", "--process-id", "1",
                        "--connect-timeout", "3"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "could not join the other processes" in err[0] and "--connect-timeout" in err[0], p.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,flag", [
    (["--devices", "0"], "--devices"), (["--devices", "99"], "--devices"), (["--devices", "two"], "--devices"),
    (["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2"], "--process-id"),
    (["--coordinator", "nohostport", "--num-processes", "2", "--process-id", "0"], "--coordinator"),
    (["--coordinator", "host:99999", "--num-processes", "2", "--process-id", "0"], "--coordinator"),
    (["--num-processes", "2"], "--coordinator")])
def test_bad_device_and_host_flags_are_one_line_exit_2(args, flag, capsys, tmp_path):
    from experiments import lr_sweep

    with pytest.raises(SystemExit) as e:
        lr_sweep.main([*LAB_A, "--out", str(tmp_path / "o"), *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err, err
    assert not (tmp_path / "o").exists()
