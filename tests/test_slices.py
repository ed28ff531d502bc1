"""A long epoch in pieces: the engine calls a classifier's epoch as begin, slices of steps and end,
so the progress bar moves within the epoch; the numbers are those of whole epochs. A piece runs
``slice_steps`` training steps shared by the members on a device."""
import numpy as np
import pytest

import dataclasses

from jaxlabs.engine import group as group_module
from jaxlabs.engine.group import WaveBars, group_result
from jaxlabs.engine.options import EngineOptions
from jaxlabs.engine.plans import VMAP, Plan
from jaxlabs.engine.run import GroupSpec, Run, SweepPolicy
from jaxlabs.progress import with_rate
from jaxlabs.sweep import run_group
from jaxlabs.tasks import get_task

CNN = dict(synthetic=200, subset=1.0, depth=1, channels=4, hidden=8, batch_size=8, epochs=2, batch_norm=True,
           dropout=0.3)


class Bar:
    """What the engine does to a tqdm bar, recorded."""

    def __init__(self):
        self.n, self.moves, self.postfix = 0, [], ""

    def update(self, k):
        self.n += k
        self.moves.append(k)

    def set_postfix_str(self, text, refresh=True):
        self.postfix = text


@pytest.mark.parametrize("plan", [Plan("vmap"), Plan("map"), Plan("hybrid", 2)])
def test_an_epoch_in_pieces_gives_the_whole_epochs_numbers_bit_for_bit(plan):
    task = get_task("mnist-cnn")
    trainer, data = task.build(task.resolve_static(**CNN))
    assert trainer.slices is not None and trainer.slices.steps == 20  # 160 training images, batches of 8
    hp = {"lr": [0.01, 0.003, 0.01]}
    whole = run_group(trainer, data, [0, 1, 2], hp, progress=False,
                      options=EngineOptions(plan=plan, chunk=1, slice_steps=None))
    pieces = run_group(trainer, data, [0, 1, 2], hp, progress=False,
                       options=EngineOptions(plan=plan, chunk=1, slice_steps=18))  # 3 members: 6 + 6 + 6 + 2 steps
    assert [c[1:3] for c in pieces.compiled if c[1] == "slice"] == [("slice", 6), ("slice", 2)]
    assert not any(c[1] == "chunk" for c in pieces.compiled)  # the whole-epoch program is never built
    for part in ("curves", "final"):
        for k, v in getattr(whole, part).items():
            np.testing.assert_array_equal(getattr(pieces, part)[k], v, err_msg=k)


def test_the_wave_reports_each_piece_and_the_bar_counts_whole_epochs(monkeypatch):
    """The bar's count moves by whole epochs only (never a float count); within an epoch its text
    says where it is (``epoch 2 of 2, 75%``), and the rate is the piece's."""
    task = get_task("mnist-cnn")
    trainer, data = task.build(task.resolve_static(**CNN))
    options = EngineOptions(chunk=1, slice_steps=10, plan=VMAP)  # 2 members: pieces of 5 steps
    bars, texts = [], []

    class Recorded(Bar):
        disable = False

        def __init__(self, *args, **kwargs):
            super().__init__()
            bars.append(self)

        def set_postfix_str(self, text, refresh=True):
            super().set_postfix_str(text)
            texts.append(text)

        def close(self):
            pass

    monkeypatch.setattr(group_module, "tqdm", Recorded)
    pieces = []
    spec = GroupSpec({}, ["a", "a"], np.asarray([0, 1]), {"lr": np.asarray([0.01, 0.01])}, lambda: (trainer, data),
                     "cnn", None, options)
    run = Run([spec], SweepPolicy())
    display = WaveBars(run, progress=True)
    hooks = display.hooks()
    record = hooks.sliced

    def sliced(u, share, seconds):
        pieces.append(share)
        record(u, share, seconds)

    run.hooks = dataclasses.replace(hooks, sliced=sliced)
    state = run.go(run.initial())
    assert group_result(run, state, 0).epochs_run == 2 and pieces == [0.25] * 8  # four pieces of 5 steps an epoch
    bar = bars[0]
    assert bar.n == 2 and bar.moves == [0, 1, 1]  # whole epochs at each end, nothing in between
    within = [t for t in texts if "epoch " in t]
    assert [t.rsplit("epoch ", 1)[1] for t in within] == ["1 of 2, 25%", "1 of 2, 50%", "1 of 2, 75%", "1 of 2, 100%",
                                                          "2 of 2, 25%", "2 of 2, 50%", "2 of 2, 75%", "2 of 2, 100%"]
    assert all(t.endswith("img/s") or "img/s |" in t for t in within)  # 160 images an epoch
    assert "val_acc best" in bar.postfix and bar.postfix.endswith("img/s")  # after the last chunk: the epoch's line


def test_a_piece_replaces_the_rate_and_keeps_the_epoch_line():
    line = "run 3 div 0 | val_acc best 98.1% median 97.5% | 1,234 img/s"
    assert with_rate(line, 2000.4) == "run 3 div 0 | val_acc best 98.1% median 97.5% | 2,000 img/s"
    assert with_rate("run 3 div 0 | loss best 0.1 median 0.2", 5) == "run 3 div 0 | loss best 0.1 median 0.2 | 5 img/s"
    assert with_rate("", 7.0) == "7 img/s" and with_rate("7 img/s", 9.0) == "9 img/s"
