"""The one atomic writer: a file lands whole or not at all, and nothing is left beside it."""
import json

import matplotlib
import numpy as np
import pytest

from jaxlabs import atomic

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def test_each_form_lands_and_leaves_nothing_beside_it(tmp_path):
    atomic.write_text(tmp_path / "a.md", "héllo")
    atomic.write_json(tmp_path / "b.json", {"x": np.float32(1.5), "y": [float("nan"), np.arange(2)]})
    atomic.write_npz(tmp_path / "c.npz", {"z": np.arange(3)}, compressed=True)
    fig = plt.figure()
    atomic.write_figure(tmp_path / "d.png", fig, dpi=20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md", "b.json", "c.npz", "d.png"]
    assert (tmp_path / "a.md").read_text(encoding="utf-8") == "héllo"
    assert json.loads((tmp_path / "b.json").read_text()) == {"x": 1.5, "y": [None, [0, 1]]}  # strict JSON
    assert np.load(tmp_path / "c.npz")["z"].tolist() == [0, 1, 2]
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    assert not plt.fignum_exists(fig.number)  # the figure is closed


def test_a_failed_write_keeps_the_earlier_file_and_no_copy(tmp_path):
    path = tmp_path / "r.json"
    atomic.write_json(path, {"old": 1})

    def half(f):
        f.write(b'{"new": ')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic.write(path, half)
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_figure_that_cannot_be_saved_is_closed_and_leaves_nothing(tmp_path):
    fig = plt.figure()
    with pytest.raises(ValueError):
        atomic.write_figure(tmp_path / "f.notaformat", fig)
    assert list(tmp_path.iterdir()) == []
    assert not plt.fignum_exists(fig.number)
