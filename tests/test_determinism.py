"""The same command twice on one machine writes the same results, byte for byte.

Every random choice (initialisation, batch order, dropout, augmentation, data splits) comes from
the seeds, so a rerun must reproduce ``results.csv`` and ``curves.npz`` exactly: a difference
means some state leaks between runs or a source of randomness escaped the seeds. What is
measured rather than computed, the seconds a program took, differs from run to run: results.csv's
timing columns (``program_s``; by the code's convention, a name ending in ``_s`` is seconds) are
left out of the comparison, and only they.
"""
import csv
import io

import pytest

from experiments import lr_sweep

LAB_A = ["--n", "60", "--epochs", "40", "--width", "8", "--depth", "2", "--lr", "0.01,0.1", "--seeds", "2"]
# mini-batches, dropout and a best-epoch checkpoint: the randomness a full-batch fit does not have
MNIST_CNN = ["--task", "mnist-cnn", "--synthetic", "40", "--subset", "1.0", "--epochs", "2", "--depth", "1",
             "--channels", "4", "--hidden", "8", "--batch-size", "8", "--lr", "0.001,0.01", "--seeds", "2"]


def without_timing(csv_bytes: bytes) -> tuple[list[str], list[list[str]]]:
    """results.csv's header and rows without its timing columns (seconds measured, not computed)."""
    header, *rows = csv.reader(io.StringIO(csv_bytes.decode()))
    keep = [i for i, name in enumerate(header) if not name.endswith("_s")]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in rows]


@pytest.mark.parametrize("args", [LAB_A, MNIST_CNN], ids=["lab-a-grid", "mnist-cnn-minibatch"])
def test_the_same_command_twice_writes_identical_results(args, tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        assert lr_sweep.main([*args, "--no-progress", "--no-tensorboard", "--out", str(out)]) == 0
    assert (first / "curves.npz").read_bytes() == (second / "curves.npz").read_bytes()
    header, rows = without_timing((first / "results.csv").read_bytes())
    assert (header, rows) == without_timing((second / "results.csv").read_bytes())
    assert len(rows) == 4 and {"test_acc", "test_mse"} & set(header)  # every member's metrics compared
