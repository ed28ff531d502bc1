"""The persistent compilation cache (jaxlabs.engine.compile_cache): a second process loads every
program the first compiled and writes the same numbers; a changed program, compile option or XLA
flag compiles afresh; --no-compile-cache and JAXLABS_COMPILE_CACHE=0 neither load nor keep; two
processes."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxlabs.engine import compile_cache
from jaxlabs.engine.plans import Plan
from jaxlabs.engine.programs import Programs
from jaxlabs.sweep import member_keys
from jaxlabs.tasks import get_task

LAB_A = ["--n", "60", "--epochs", "20", "--width", "8", "--depth", "2", "--seeds", "2", "--lr", "0.01,0.05",
         "--no-progress", "--plan", "vmap", "--no-tensorboard", "--checkpoint-every", "0"]


def sweep(cache, out, *flags, **env) -> dict:
    """Lab A's sweep in a fresh process with its own compilation cache in ``cache``: results.json."""
    p = subprocess.run([sys.executable, "-m", "experiments.lr_sweep", *LAB_A, *flags, "--out", str(out)],
                       env=dict(os.environ, JAXLABS_CACHE_DIR=str(cache), **env), capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def programs(results: dict) -> dict:
    (group,) = results["timing"]
    return group["programs"]


def numbers(out) -> list[dict]:
    """results.csv without its timing columns (compile and run seconds differ, nothing else may)."""
    rows = list(csv.DictReader(open(out / "results.csv")))
    return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]


def entries(cache) -> set:
    return {f.name for f in (cache / "xla").glob("*-cache")}


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """The cache after one run (which compiled everything): (cache folder, that run's folder, results)."""
    root = tmp_path_factory.mktemp("compile-cache")
    first = sweep(root / "cache", root / "first")
    return root / "cache", root / "first", first


def test_a_second_process_loads_every_program_the_first_compiled_and_writes_the_same_numbers(warm, tmp_path):
    cache, first_out, first = warm
    assert programs(first)["loaded"] == 0 and programs(first)["compiled"] >= 3  # init, a chunk, finish at least
    assert len(entries(cache)) >= programs(first)["compiled"]
    second = sweep(cache, tmp_path / "second")
    assert programs(second) == {**programs(second), "loaded": programs(first)["compiled"], "compiled": 0}
    # XLA's compiles are what the cache saves: loading them takes a fraction of compiling them
    assert programs(second)["xla_s"] < programs(first)["xla_s"]
    assert (tmp_path / "second" / "curves.npz").read_bytes() == (first_out / "curves.npz").read_bytes()
    assert numbers(tmp_path / "second") == numbers(first_out)
    report = (tmp_path / "second" / "report.md").read_text()
    assert f"{programs(first)['compiled']} programs loaded from the cache, 0 compiled" in report


def test_a_changed_xla_flag_compiles_afresh(warm, tmp_path):
    cache, first_out, first = warm
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_enable_fast_min_max=false".strip()
    changed = sweep(cache, tmp_path / "flag", XLA_FLAGS=flags)
    assert (programs(changed)["loaded"], programs(changed)["compiled"]) == (0, programs(first)["compiled"])


def test_no_compile_cache_neither_loads_nor_keeps(warm, tmp_path):
    cache, first_out, first = warm
    before = entries(cache)
    run = sweep(cache, tmp_path / "off", "--no-compile-cache", "--seeds", "3")
    # three seeds: programs of another member count, which a cache in use would have kept
    assert (programs(run)["loaded"], programs(run)["compiled"]) == (0, programs(first)["compiled"])
    assert entries(cache) == before


def test_a_changed_program_or_compile_option_compiles_afresh(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXLABS_CACHE_DIR", str(tmp_path))
    task = get_task("fit-log2cos")
    keys, hp = np.asarray(member_keys([0, 1])), {"lr": np.float32([0.01, 0.1]), "tolerance": np.float32([0, 0])}

    def init(width: int, options=None) -> tuple[int, int]:
        trainer, data = task.build(task.resolve_static(n=40, width=width, depth=1, epochs=2))
        programs = Programs(trainer, data, Plan("vmap"), options=options)
        programs.init(programs.placement.members(keys), programs.placement.members(hp))
        return programs.loaded, len(programs.compiles) - programs.loaded

    assert compile_cache.ensure() == tmp_path / "xla"
    assert init(4) == (0, 1)
    assert init(4) == (1, 0)  # the same program: loaded
    assert init(5) == (0, 1)  # another width: another program
    assert init(4, options={}) == (0, 1)  # without the engine's CPU compile options: another compile
    assert init(4, options={}) == (1, 0)
    kept = entries(tmp_path)
    monkeypatch.setenv(compile_cache.ENV, "0")  # off from the environment: compiled, and nothing kept
    assert init(6) == (0, 1) and init(6) == (0, 1)
    assert entries(tmp_path) == kept


def test_the_environment_turns_the_cache_off_and_a_users_own_folder_stands(tmp_path, monkeypatch):
    for off in ("0", "off", "False", "no"):
        monkeypatch.setenv(compile_cache.ENV, off)
        assert not compile_cache.wanted()
    monkeypatch.setenv(compile_cache.ENV, "1")
    assert compile_cache.wanted()
    script = ("import jax; jax.config.update('jax_compilation_cache_dir', {mine!r}); "
              "from jaxlabs.engine import compile_cache; print(compile_cache.configure())")
    mine = str(tmp_path / "mine")
    p = subprocess.run([sys.executable, "-c", script.format(mine=mine)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == mine


def test_two_processes_process_0_loads_what_it_kept_and_each_says_what_it_loaded(tmp_path):
    """JAX writes entries from process 0 only; a CPU program's key names its process's devices, so
    here (one machine, one folder) process 0 loads all of its programs on the second run and process 1,
    whose programs' keys name its own devices, compiles its own (on GPUs the key leaves the device
    assignment out, so process 1 would load process 0's)."""
    from test_devices import free_port

    def run(name: str) -> tuple[dict, str]:
        port = free_port()
        procs = [subprocess.Popen([sys.executable, "-m", "experiments.lr_sweep", *LAB_A,
                                   "--out", str(tmp_path / f"{name}{i}"), "--coordinator", f"127.0.0.1:{port}",
                                   "--num-processes", "2", "--process-id", str(i), "--connect-timeout", "60"],
                                  env=dict(os.environ, JAXLABS_CACHE_DIR=str(tmp_path / "cache")),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
        outs = [p.communicate(timeout=600) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
        return json.loads((tmp_path / f"{name}0" / "results.json").read_text()), outs[1][0]

    first, _ = run("first")
    second, process1 = run("second")
    assert programs(first)["loaded"] == 0
    assert (programs(second)["loaded"], programs(second)["compiled"]) == (programs(first)["compiled"], 0)
    assert numbers(tmp_path / "second0") == numbers(tmp_path / "first0")
    assert "programs loaded from the cache" in process1 and "trained its share" in process1
