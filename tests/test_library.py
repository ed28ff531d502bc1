"""The library's face: ``jaxlabs.sweep``, ``jaxlabs.search``, ``jaxlabs.model`` and their results,
each training once (compiles and builds counted), the same table and files as the commands, bad
input as one line before anything compiles, and the README's Searching example as written."""
from __future__ import annotations

import collections
import contextlib
import json
import re
from pathlib import Path

import jax
import matplotlib.figure
import numpy as np
import optax
import pytest
from flax import nnx

import jaxlabs
from jaxlabs.tasks.boston import BostonTask

README = Path(__file__).resolve().parents[1] / "README.md"


@contextlib.contextmanager
def counted(monkeypatch, task_class=BostonTask):
    """Counts of XLA compiles and of ``task_class.build`` calls while the block runs."""
    counts = collections.Counter()

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            counts["compiles"] += 1

    build = task_class.build

    def counting_build(self, static):
        counts["builds"] += 1
        return build(self, static)

    monkeypatch.setattr(task_class, "build", counting_build)
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
        monkeypatch.setattr(task_class, "build", build)


def test_a_lab_sweep_is_one_call_that_trains_once_and_saves_what_the_command_writes(tmp_path, monkeypatch, capsys):
    from experiments import lr_sweep

    with counted(monkeypatch) as trained:
        r = jaxlabs.sweep("boston", lr=[0.01, 0.001], seeds=2, epochs=3, progress=False)
    assert trained["builds"] == 1 and trained["compiles"] > 0
    with counted(monkeypatch) as saving:
        r.save(tmp_path / "lib")
        table, html, figures = r.table(), r._repr_html_(), r.figures()
    assert saving == {}  # nothing built, nothing compiled: written from what was trained

    records = r.records()
    assert len(records) == 4 and {x["setting"] for x in records} == {"lr=0.01", "lr=0.001"}
    assert r.curves("loss").shape == (4, 3) and np.isfinite(r.curves("val_loss")).all()
    means = {s: np.mean([x["test_r2"] for x in records if x["setting"] == s]) for s in ("lr=0.01", "lr=0.001")}
    best = r.best()
    assert best["setting"] == max(means, key=means.get) and best["mean"] == pytest.approx(means[best["setting"]])
    assert best["lr"] in (0.01, 0.001) and best["epochs"] == 3 and best["seeds"] == 2
    assert "<table>" in html and "lr=0.001" in html
    assert set(figures) == {"loss_curves.png", "val_true_vs_pred.png"}
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figures.values())
    assert r.to_pandas().shape[0] == 4

    lib = tmp_path / "lib"
    meta = json.loads((lib / "results.json").read_text())
    assert len(meta["members"]) == 4 and sum(g["members"] * g["epochs_run"] for g in meta["timing"]) == 4 * 3
    assert {"report.md", "report.html", "results.csv", "curves.npz", "loss_curves.png"} <= {p.name for p in lib.iterdir()}
    assert len(list((lib / "tensorboard").rglob("events.out.tfevents.*"))) == 4  # one run per member
    assert table in (lib / "report.md").read_text()

    # the command on the same grid prints the same table, number for number
    assert lr_sweep.main(["--task", "boston", "--lr", "0.01,0.001", "--seeds", "2", "--epochs", "3", "--no-progress",
                          "--out", str(tmp_path / "cmd")]) == 0
    assert table in capsys.readouterr().out


def test_a_static_list_is_one_program_per_value_and_settings_cross(monkeypatch):
    with counted(monkeypatch) as trained:
        r = jaxlabs.sweep("boston", width=[8, 16], lr=[0.01, 0.1], seeds=1, epochs=2, progress=False)
    assert trained["builds"] == 2 and len(r.timing) == 2
    assert [x["setting"] for x in r.records()] == ["width=8 lr=0.01", "width=8 lr=0.1", "width=16 lr=0.01",
                                                   "width=16 lr=0.1"]
    assert [x["width"] for x in r.records()] == [8, 8, 16, 16]
    assert r.table().count("| width=") == 4


def test_a_search_is_one_call_and_its_result_saves_without_training(tmp_path, monkeypatch):
    with counted(monkeypatch) as trained:
        s = jaxlabs.search("boston", members=9, lr=jaxlabs.loguniform(1e-3, 0.3), momentum=[0.0, 0.9], epochs=9,
                           progress=False)
    assert trained["builds"] == 1
    records = s.records()
    assert len(records) == 9 and "pruned" in {x["status"] for x in records}
    assert all(1e-3 <= x["lr"] <= 0.3 for x in records)  # as float32 numbers: the members trained with those
    assert {x["momentum"] for x in records} == {0.0, float(np.float32(0.9))}
    best = s.best()
    assert set(best["setting"]) == {"lr", "momentum"} and records[best["member"]]["best"]
    assert s.curves().shape == (9, 9) and s.metric == "val_loss"
    assert s.table().splitlines()[2].startswith(f"| {best['member']} ")  # the best member leads the table
    with counted(monkeypatch) as saving:
        s.save(tmp_path / "search")
        figures = s.figures()
    assert saving == {} and set(figures) == {"search_curves.png"}
    meta = json.loads((tmp_path / "search" / "results.json").read_text())
    assert meta["best"]["member"] == best["member"] and len(meta["members"]) == 9
    assert meta["command"].startswith("jaxlabs.search('boston'")


def test_a_uniform_range_samples_uniformly_whatever_the_options_scale():
    from jaxlabs.library import search_space

    task = BostonTask()
    dims = {d.name: d for d in search_space(task, {"lr": jaxlabs.uniform(0.01, 0.1),
                                                   "weight_decay": jaxlabs.loguniform(1e-5, 1e-2)})}
    assert not dims["lr"].log and dims["lr"].at(0.5) == pytest.approx(0.055)
    assert dims["weight_decay"].log and dims["weight_decay"].at(0.5) == pytest.approx(10 ** -3.5)


class Tiny(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, outputs: int = 3):
        self.hidden, self.out = nnx.Linear(2, 8, rngs=rngs), nnx.Linear(8, outputs, rngs=rngs)
        self.norm = nnx.BatchNorm(8, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.norm(self.hidden(x))))


def clusters(n=90):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    return np.eye(3)[y][:, :2] * 3 + rng.normal(size=(n, 2)), y


def test_an_own_nnx_model_searches_as_a_lab_does(tmp_path):
    net = jaxlabs.model(lambda rngs: Tiny(rngs), optimizer=lambda lr: optax.adam(lr),
                        loss=jaxlabs.optim.cross_entropy, data=clusters(), epochs=4, batch_size=16)
    s = jaxlabs.search(net, members=4, lr=jaxlabs.loguniform(1e-3, 1e-1), eta=2, progress=False,
                       out=tmp_path / "own")
    assert s.metric == "val_acc" and len(s.records()) == 4
    assert (tmp_path / "own" / "report.md").is_file()


def _bad_cases():
    net = dict(loss=jaxlabs.optim.cross_entropy, data=clusters(), epochs=2)
    instance = Tiny(nnx.Rngs(0))  # built (and its arrays computed) by the user, before the call
    return {
        "unknown lab": (lambda out: jaxlabs.sweep("bostn", out=out), "unknown lab 'bostn'; the labs are"),
        "no such option": (lambda out: jaxlabs.sweep("boston", lrr=[0.1], out=out), "boston has no option 'lrr'"),
        "range on a static option": (lambda out: jaxlabs.search("boston", width=jaxlabs.uniform(8, 64), out=out),
                                     "width is static (each value compiles its own program)"),
        "range in a sweep": (lambda out: jaxlabs.sweep("boston", lr=jaxlabs.loguniform(1e-3, 1e-1), out=out),
                             "a sweep takes a value or a list of values"),
        "log range reaching 0": (lambda out: jaxlabs.search("boston", weight_decay=jaxlabs.loguniform(0, 1e-2), out=out),
                                 "log scale, so its range must be > 0"),
        "a value out of range": (lambda out: jaxlabs.sweep("boston", lr=[0.1, -1.0], out=out), "lr"),
        "unknown method": (lambda out: jaxlabs.search("boston", method="grid", out=out), "unknown search method"),
        "unknown plan": (lambda out: jaxlabs.sweep("boston", plan="fast", out=out), "is not a plan"),
        "unknown precision": (lambda out: jaxlabs.sweep("boston", precision="fp8", out=out), "is not a precision"),
        "more devices than there are": (lambda out: jaxlabs.search("boston", devices=64, out=out),
                                        "64 devices asked for"),
        "two budgets in a search": (lambda out: jaxlabs.search("boston", epochs=[2, 3], out=out), "one budget"),
        "outputs that do not fit": (lambda out: jaxlabs.model(lambda rngs: Tiny(rngs, outputs=2), optimizer=lambda lr:
                                                              optax.sgd(lr), **net),
                                    "the model gives (2,) per row but the labels run 0..2"),
        "optimizer without lr": (lambda out: jaxlabs.model(lambda rngs: Tiny(rngs), optimizer=lambda rate:
                                                           optax.sgd(rate), **net),
                                 "the optimizer factory needs an lr argument"),
        "an nnx instance": (lambda out: jaxlabs.model(instance, optimizer=lambda lr: optax.sgd(lr), **net),
                            "give the NNX model as a function of nnx.Rngs"),
    }


@pytest.mark.parametrize("case", list(_bad_cases()))
def test_bad_input_is_one_line_before_anything_compiles_or_is_written(case, tmp_path, monkeypatch):
    call, says = _bad_cases()[case]
    with counted(monkeypatch) as work, pytest.raises(ValueError) as info:
        call(tmp_path / "out")
    message = str(info.value)
    assert says in message and "\n" not in message, message
    assert work == {} and not (tmp_path / "out").exists()


def test_the_readme_search_example_runs_as_it_stands(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    m = re.search(r"## Searching for the best setting\n.*?```python\n(.*?)```", text, re.DOTALL)
    assert m, "README has no Searching example in Python"
    monkeypatch.chdir(tmp_path)
    exec(compile(m.group(1), "README.md", "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("{'lr': ") and "'weight_decay': " in printed[0]
    meta = json.loads((tmp_path / "runs" / "boston-search" / "results.json").read_text())
    assert len(meta["members"]) == 27 and meta["method"] == "halving"


def test_the_verbs_are_the_modules_of_the_same_names():
    from jaxlabs.search import run_search
    from jaxlabs.sweep import run_grid

    assert jaxlabs.sweep.run_grid is run_grid and jaxlabs.search.run_search is run_search
    assert callable(jaxlabs.sweep) and callable(jaxlabs.search)


def test_a_hyperband_search_is_one_call_its_brackets_sizing_the_population():
    s = jaxlabs.search("fit-log2cos", method="hyperband", epochs=9, n=60, width=8, depth=2, progress=False)
    r = s._r
    assert len(r.members) == 9 + 5 + 3 and r.bracket.tolist() == [2] * 9 + [1] * 5 + [0] * 3
    assert "bracket" in s.table() and s.best()["member"] == r.best
    with pytest.raises(jaxlabs.LibraryError, match="leave members out"):
        jaxlabs.search("fit-log2cos", method="hyperband", members=9, epochs=9)
