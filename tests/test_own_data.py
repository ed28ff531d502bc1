"""Your own data and model: the csv and image-folder tasks and model_task, end to end on tiny
data written here, and the README's "Your own model" example run as it stands."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import r2_score
from tiny_data import write_image_folder

from experiments import lr_sweep
from jaxlabs.data.table import TableError, encode_features, prepare_table, read_csv
from jaxlabs.sweep import run_sweep
from jaxlabs.tasks import get_task

README = Path(__file__).resolve().parents[1] / "README.md"
# float32 metrics recomputed in float64 by sklearn on the same predictions
METRIC_RTOL = 1e-5


def write_csv(path, rows=60, seed=0, extra=None):
    """x1, x2 numbers, colour text, y = 2 x1 - x2 + 1.5 [colour == red] + noise, kind = y > 0."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], rows)
    y = 2 * x1 - x2 + 1.5 * (colour == "red") + 0.1 * rng.normal(size=rows)
    lines = ["x1,x2,colour,y,kind"] + [f"{a:.4f},{b:.4f},{c},{t:.4f},{'big' if t > 0 else 'small'}"
                                      for a, b, c, t in zip(x1, x2, colour, y)]
    if extra:
        lines = extra(lines)
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------------------- csv

def test_csv_features_are_standardised_on_train_and_one_hot(tmp_path):
    prep = prepare_table(read_csv(write_csv(tmp_path / "t.csv")), "y", ignore=("kind",))
    assert prep["numeric"] == ["x1", "x2"] and prep["categorical"] == ["colour"] and prep["classes"] is None
    train, test = np.arange(40), np.arange(40, 60)
    x_train, x_test = encode_features(prep, (train, test))
    assert x_train.shape == (40, 5) and x_train.dtype == np.float32  # 2 numbers + 3 colours
    np.testing.assert_allclose(x_train[:, :2].mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(x_train[:, :2].std(0), 1, rtol=1e-5)
    assert set(np.unique(x_test[:, 2:])) <= {0.0, 1.0} and (x_train[:, 2:].sum(1) == 1).all()


def test_csv_regression_end_to_end_matches_sklearns_metrics(tmp_path):
    task = get_task("csv")
    static = task.resolve_static(data=str(write_csv(tmp_path / "t.csv", rows=120)), target="y", ignore="kind",
                                 epochs=40, width=16)
    task.check(static)
    assert task.primary_metric == "test_r2"
    result = run_sweep(task, [static], [0, 1], {"lr": [0.01]}, progress=False)
    g = result.groups[0]
    for i, row in enumerate(result.records()):
        assert row["data"].startswith("t.csv (120 rows; 80/20/20 train/val/test; target y: regression")
        pred, true = g.final["test_pred"][i], g.final["test_true"][i]
        np.testing.assert_allclose(row["test_r2"], r2_score(true, pred), rtol=METRIC_RTOL)
        assert row["test_r2"] > 0.9  # a linear target with small noise
        assert 1 <= row["best_epoch"] <= 40


def test_csv_classification_through_the_command(tmp_path, capsys):
    out = tmp_path / "out"
    assert lr_sweep.main(["--task", "csv", "--data", str(write_csv(tmp_path / "t.csv", rows=90)), "--target", "kind",
                          "--ignore", "y", "--epochs", "30", "--lr", "0.01", "--seeds", "2", "--no-progress",
                          "--no-tensorboard", "--out", str(out)]) == 0
    meta = json.loads((out / "results.json").read_text())
    name = meta["data"][0]
    assert "target kind: 2 classes 0=big, 1=small" in name
    assert all(m["data"] == name and m["test_acc"] > 0.8 for m in meta["members"])
    assert {"confusion.png", "per_class.md", "val_acc_curves.png"} <= {p.name for p in out.iterdir()}
    assert f"**Data:** {name}." in (out / "report.md").read_text()


def test_csv_missing_cells_dropped_or_refused_and_categorical_codes(tmp_path):
    def blank(lines):
        lines[3] = "," + lines[3].split(",", 1)[1]  # x1 missing on line 4
        lines[7] = lines[7].replace("red", "NA").replace("green", "NA").replace("blue", "NA")
        return lines

    path = write_csv(tmp_path / "t.csv", extra=blank)
    with pytest.raises(TableError, match=r"line 4: column 'x1' is missing \(''\); 2 rows have a missing cell: .*--missing drop"):
        prepare_table(read_csv(path), "y")
    prep = prepare_table(read_csv(path), "y", missing="drop", categorical=("x2",))
    assert prep["dropped"] == 2 and len(prep["y"]) == 58
    assert prep["numeric"] == ["x1"] and prep["categorical"] == ["x2", "colour", "kind"]


# -------------------------------------------------------------------------------- image folder

COUNTS = {"train": {"dog": 24, "cat": 24}, "test": {"cat": 6, "dog": 6}}


def test_image_folder_end_to_end_names_the_data_and_classes(tmp_path):
    write_image_folder(tmp_path / "pets", COUNTS, size=8)
    out = tmp_path / "out"
    assert lr_sweep.main(["--task", "image-folder", "--data-dir", str(tmp_path / "pets"), "--model", "cnn",
                          "--depth", "1", "--channels", "4", "--hidden", "8", "--epochs", "2", "--batch-size", "16",
                          "--crop", "1", "--flip", "--seeds", "2", "--lr", "0.001", "--no-progress",
                          "--no-tensorboard", "--out", str(out)]) == 0
    meta = json.loads((out / "results.json").read_text())
    name = "pets (image folder of PNG files); 43/5/12 train/val/test images of 8x8x3; classes 0=cat, 1=dog"
    assert meta["data"] == [name] and all(m["data"] == name for m in meta["members"])
    assert all(1 <= m["best_epoch"] <= 2 for m in meta["members"])
    assert {"confusion.png", "per_class.md", "loss_curves.png"} <= {p.name for p in out.iterdir()}


def test_image_folder_is_decoded_once(tmp_path, monkeypatch):
    from jaxlabs.data import imagefolder

    write_image_folder(tmp_path / "pets", COUNTS, size=8)
    task = get_task("image-folder")
    static = task.resolve_static(data_dir=str(tmp_path / "pets"), model="mlp", width=4)
    first, _, _ = task.splits(static)
    monkeypatch.setattr(imagefolder, "_decode", lambda *a: pytest.fail("decoded again"))
    again, _, _ = task.splits(static)  # from the cache
    for k in first:
        np.testing.assert_array_equal(first[k], again[k])
    (tmp_path / "pets" / "train" / "cat" / "000.png").unlink()  # a changed folder is read afresh
    with pytest.raises(pytest.fail.Exception, match="decoded again"):
        task.splits(static)


def test_image_folder_test_share_resize_and_gray(tmp_path):
    from PIL import Image

    write_image_folder(tmp_path / "gray", {"train": {"a": 20, "b": 20}}, size=8, gray=True)
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "gray" / "train" / "a" / "big.png")
    task = get_task("image-folder")
    static = task.resolve_static(data_dir=str(tmp_path / "gray"), test_share=0.25, val_share=0.0, resize="6x5")
    data, names, name = task.splits(static)
    assert names == ("a", "b") and data["x_train"].shape == (30, 6, 5, 1) and len(data["y_test"]) == 11
    assert "x_val" not in data and "30/11 train/test images of 6x5x1 (resized)" in name
    assert sorted(np.bincount(data["y_test"])) == [5, 6]  # stratified


def test_image_folder_larger_than_device_memory(tmp_path):
    from jaxlabs.sweep import EngineOptions, run_group

    write_image_folder(tmp_path / "pets", COUNTS, size=8)
    task = get_task("image-folder")
    trainer, data = task.build(task.resolve_static(data_dir=str(tmp_path / "pets"), epochs=1))
    with pytest.raises(MemoryError, match=r"the data \(.*pets.*\) takes [\d.]+ KiB on each device, but 1000 B is"):
        run_group(trainer, data, [0], {"lr": [0.001]}, progress=False, options=EngineOptions(memory_limit=1000))


# ---------------------------------------------------------------------------------- own model

def readme_example() -> str:
    text = README.read_text()
    m = re.search(r"### Your own model\n.*?```python\n(.*?)```", text, re.DOTALL)
    assert m, "README has no 'Your own model' example"
    return m.group(1)


def test_the_readme_example_runs_as_it_stands(tmp_path, monkeypatch, capsys):
    code = readme_example()
    assert 15 <= len(code.strip().splitlines()) <= 40
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    exec(compile(code, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out
    accs = [float(v) for v in re.findall(r"\d\.\d+", printed.splitlines()[0])]
    assert len(accs) == 6 and min(accs) > 0.7  # three separable clusters, BatchNorm and dropout on
    out = tmp_path / "runs" / "clusters"
    meta = json.loads((out / "results.json").read_text())
    assert meta["task"] == "clusters" and meta["data"] == ["three clusters"] and len(meta["members"]) == 6
    assert {"report.md", "results.csv", "confusion.png", "per_class.md", "tensorboard"} <= {p.name for p in out.iterdir()}
    assert "| lr=0.1" in printed and "TwoLayer (nnx" in namespace["net"].description


def test_own_model_regression_with_dropout_and_a_dict_of_splits():
    import optax
    from flax import linen as nn

    from jaxlabs.optim import mse_loss
    from jaxlabs.tasks.own_model import model_task

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            x = nn.Dropout(0.1, deterministic=not train)(nn.tanh(nn.Dense(16)(x)))
            return nn.Dense(1)(x)

    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5], np.float32)
    data = {"x_train": x[:120], "y_train": y[:120], "x_val": x[120:160], "y_val": y[120:160],
            "x_test": x[160:], "y_test": y[160:]}
    task = model_task(Net(), lambda lr: optax.adam(lr), mse_loss, data, epochs=60, batch_size=16)
    assert task.primary_metric == "test_r2" and task.traced_defaults == {"lr": 0.001}
    result = run_sweep(task, [task.resolve_static()], [0, 1], {"lr": [0.01]}, progress=False)
    rows = result.records()
    assert all(r["test_r2"] > 0.9 for r in rows) and rows[0]["test_r2"] != rows[1]["test_r2"]


@pytest.mark.parametrize("case,says", [
    ("three outputs, five classes", "the model gives (3,) per row but the labels run 0..4: its last layer needs 5 outputs"),
    ("no lr", "the optimizer factory needs an lr argument"),
    ("batch norm without train", "keeps batch statistics but its __call__ takes no train argument"),
    ("regression target shape", "the model gives (3,) per row but each target is (1,)"),
])
def test_own_model_that_cannot_train_is_one_line(case, says):
    import optax
    from flax import linen as nn

    from jaxlabs.optim import cross_entropy
    from jaxlabs.tasks.own_model import OwnModelError, model_task

    class Dense3(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3)(x)

    class WithBN(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(5)(nn.BatchNorm(use_running_average=True)(x))

    x = np.random.default_rng(0).normal(size=(60, 2))
    labels = np.arange(60) % 5
    module, optimizer, y = Dense3(), (lambda lr: optax.sgd(lr)), labels
    if case == "no lr":
        optimizer = lambda rate: optax.sgd(rate)  # noqa: E731
    elif case == "batch norm without train":
        module = WithBN()
    elif case == "regression target shape":
        y = labels.astype(np.float32)
    with pytest.raises(OwnModelError) as info:
        model_task(module, optimizer, cross_entropy, (x, y))
    assert says in str(info.value) and "\n" not in str(info.value)
