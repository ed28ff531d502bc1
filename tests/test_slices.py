"""A long epoch in pieces: the engine calls a classifier's epoch as begin, slices of steps and end,
so the progress bar moves within the epoch; the numbers are those of whole epochs. A piece runs
``slice_steps`` training steps shared by the members on a device."""
import numpy as np
import pytest

from jaxlabs import progress
from jaxlabs.engine.auto import Auto, Decision
from jaxlabs.engine.options import EngineOptions
from jaxlabs.engine.placement import Placement
from jaxlabs.engine.plans import VMAP, Plan
from jaxlabs.engine.programs import PlanPrograms
from jaxlabs.engine.wave import WaveRun, train_wave
from jaxlabs.progress import with_rate
from jaxlabs.sweep import member_keys, run_group
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


def test_the_wave_reports_each_piece_and_the_bar_ends_on_whole_epochs():
    task = get_task("mnist-cnn")
    trainer, data = task.build(task.resolve_static(**CNN))
    options = EngineOptions(chunk=1, slice_steps=10)  # 2 members: pieces of 5 steps
    placement = Placement()
    programs_for = PlanPrograms(trainer, placement.shared(data), "fp32", placement)
    programs_for.slice_steps = options.slice_steps
    pieces, bar = [], Bar()

    def tick(ws, first, done, seconds):
        progress.tick(bar, trainer, ws, first, done, seconds, converging=False)

    def sliced(share, seconds):
        pieces.append(share)
        bar.update(share)

    run = WaveRun(trainer, programs_for, options, 1, Decision.start(VMAP),
                  Auto(trainer, programs_for, options, None, 1, 2), tick, lambda *a: None, sliced)
    curves, final, epochs, _ = train_wave(run, np.asarray(member_keys([0, 1])), {"lr": np.float32([0.01, 0.01])})
    assert epochs == 2 and pieces == [0.25] * 8  # four pieces of 5 steps an epoch
    assert bar.n == 2 and bar.moves == [0.25] * 4 + [0] + [0.25] * 4 + [0]  # whole epochs after each end
    assert "val_acc best" in bar.postfix and bar.postfix.endswith("img/s")  # 160 images an epoch


def test_a_piece_replaces_the_rate_and_keeps_the_epoch_line():
    line = "run 3 div 0 | val_acc best 98.1% median 97.5% | 1,234 img/s"
    assert with_rate(line, 2000.4) == "run 3 div 0 | val_acc best 98.1% median 97.5% | 2,000 img/s"
    assert with_rate("run 3 div 0 | loss best 0.1 median 0.2", 5) == "run 3 div 0 | loss best 0.1 median 0.2 | 5 img/s"
    assert with_rate("", 7.0) == "7 img/s" and with_rate("7 img/s", 9.0) == "9 img/s"
