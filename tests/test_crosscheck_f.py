"""Lab F's PyTorch crosscheck (experiments.torch_crosscheck F) on a tiny JPEG copy of CIFAR-10
written here: the training function, --json's resume, --jaxlabs-results and its errors."""
import json
import os
import signal

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tiny_data import write_image_folder, zip_folder  # noqa: E402

from experiments import torch_crosscheck as tc  # noqa: E402
from experiments.torch_models import CifarResNet  # noqa: E402
from jaxlabs.interrupt import Interrupted  # noqa: E402
from jaxlabs.data import load_dataset  # noqa: E402

DATA = "cifar10-jpeg (JPEG copy of CIFAR-10)"
# 30 train images (batch 8: three full batches and a short one of 6), 10 test images, 32x32
COUNTS = {"train": {f"class{k}": 3 for k in range(10)}, "test": {f"class{k}": 1 for k in range(10)}}
TINY = {"blocks": 1, "width": 4, "batch_size": 8, "epochs": 2, "drop_epoch": 1, "augment": True,
        "lr": 0.1, "momentum": 0.0, "weight_decay": 5e-4}


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small CPU use, and the same arithmetic on every run
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def data_dir(clean_env):
    """A folder holding cifar10-jpeg.zip, ten classes of 32x32 JPEGs."""
    write_image_folder(clean_env / "tree" / "cifar10-jpeg", COUNTS, size=32, suffix=".jpg")
    (clean_env / "data").mkdir()
    zip_folder(clean_env / "tree" / "cifar10-jpeg", clean_env / "data" / "cifar10-jpeg.zip", top="cifar10-jpeg")
    return clean_env / "data"


def test_config_is_the_tasks_and_the_model_has_resnet20s_parameters():
    from jaxlabs.tasks.cifar_resnet20 import CifarResNet20Task

    task = CifarResNet20Task()
    defaults = {**task.static_defaults, **task.traced_defaults}
    assert {k: defaults[k] for k in tc.F_CONFIG} == tc.F_CONFIG
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(CifarResNet()) == 269_722  # jaxlabs.models.resnet's ResNet20


def test_model_matches_jaxlabs_resnet_shapes():
    import jax
    import jax.numpy as jnp
    from jaxlabs.models import ResNet

    variables = jax.eval_shape(lambda: ResNet(blocks_per_stage=(1, 1, 1), widths=(4, 8, 16)).init(
        jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
    jax_count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables["params"]))
    model = CifarResNet(blocks=1, width=4)
    assert sum(p.numel() for p in model.parameters()) == jax_count
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_crop_flip_is_a_window_of_the_padded_image_maybe_flipped():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 6, 6)
    out = tc.crop_flip_torch(x, pad=2)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    flips, corners = 0, set()
    for i in range(len(x)):
        found = [(t, l, f) for t in range(5) for l in range(5) for f in (False, True)
                 if torch.equal(out[i], (lambda w: w.flip(-1) if f else w)(padded[i, :, t:t + 6, l:l + 6]))]
        assert found, f"image {i} is not a crop of the padded image"
        flips += found[0][2]
        corners.add(found[0][:2])
    assert 10 < flips < 54 and len(corners) > 10  # both kinds, many positions


def test_torch_lab_f_on_a_tiny_copy(data_dir, one_thread):
    raw = load_dataset("cifar10", data_dir)
    assert raw["source"] == DATA
    lines = []
    run = tc.torch_lab_f(raw, 0, **TINY, log=lines.append)
    assert len(lines) == 2 and "seed 0 epoch 1/2: test accuracy" in lines[0] and "lr 0.1," in lines[0]
    assert "lr 0.01," in lines[1]  # from the drop epoch on
    for k in ("test_acc", "test_loss", "train_loss", "train_acc", "epoch_s"):
        assert len(run[k]) == 2
    assert all(0 <= a <= 1 and round(a * 10, 6) == round(a * 10) for a in run["test_acc"])  # k / 10 images
    assert all(np.isfinite(run["train_loss"])) and all(0 <= a <= 1 for a in run["train_acc"])
    assert run["final_test_acc"] == run["test_acc"][-1]
    assert run["jump"] == pytest.approx(run["test_acc"][1] - run["test_acc"][0])
    assert run["seconds"] > 0
    again = tc.torch_lab_f(raw, 0, **TINY)
    assert again["test_acc"] == run["test_acc"] and again["train_loss"] == run["train_loss"]  # seeded
    print(f"tiny PyTorch epoch: {np.mean(run['epoch_s']):.3f} s")


def run_main(capsys, *args):
    code = tc.main(["F", "--torch-threads", "1", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def fake_results(folder, config, accs, data=DATA, study="F-schedule", quick=False):
    """A results.json (and curves.npz) as `experiments.reproduce F` writes them, for ``accs``
    (seeds, epochs) of the "0.1 then 0.01" setting, with a "constant 0.1" member between them."""
    folder.mkdir(parents=True, exist_ok=True)
    drop = config["drop_epoch"]
    members, curves, seeds = [], [], []
    for seed, acc in enumerate(accs):
        for setting, curve in (("0.1 then 0.01", acc), ("constant 0.1", [0.05] * len(acc))):
            members.append({"study": study, "task": "cifar-resnet20", "setting": setting, **config,
                            "data_dir": None, "synthetic": 0, "data": data, "seed": seed, "status": "max_epochs",
                            "test_acc": curve[-1], f"test_acc_epoch{drop}": curve[drop - 1],
                            f"test_acc_epoch{drop + 1}": curve[drop]})
            curves.append(curve)
            seeds.append(seed)
    meta = {"study": study, "title": "t", "task": "cifar-resnet20", "lab": "F", "command": "", "data": [data],
            "seeds": list(range(len(accs))), "quick": quick, "members": members}
    (folder / "results.json").write_text(json.dumps(meta))
    np.savez(folder / "curves.npz", seed=np.array(seeds), test_acc=np.array(curves, np.float32))
    return folder / "results.json"


def test_main_f_saves_each_seed_and_resumes(data_dir, tmp_path, capsys, monkeypatch, one_thread):
    monkeypatch.setattr(tc, "F_CONFIG", TINY)
    out_json = tmp_path / "f.json"
    code, out, _ = run_main(capsys, "--data-dir", data_dir, "--seeds", 2, "--json", out_json)
    assert code == 0
    assert out.count("PyTorch seed 0 epoch") == 2 and out.count("PyTorch seed 1 epoch") == 2
    assert "not compared. Add its figures with --jaxlabs-results" in out
    lines_with_cifar = [line for line in out.splitlines() if "CIFAR-10" in line]
    assert lines_with_cifar and all(DATA in line for line in lines_with_cifar)  # never CIFAR-10 alone
    doc = json.loads(out_json.read_text())
    assert [r["seed"] for r in doc["torch_seeds"]] == [0, 1] and doc["config"]["data"] == DATA
    first = doc["torch_seeds"]

    trained = []
    real = tc.torch_lab_f
    monkeypatch.setattr(tc, "torch_lab_f", lambda raw, seed, **kw: trained.append(seed) or real(raw, seed, **kw))
    code, out, _ = run_main(capsys, "--data-dir", data_dir, "--seeds", 3, "--json", out_json)
    assert code == 0 and trained == [2]  # seeds 0 and 1 were already there
    assert "PyTorch seed 0: already in" in out and "PyTorch seed 1: already in" in out
    doc = json.loads(out_json.read_text())
    assert doc["torch_seeds"][:2] == first and [r["seed"] for r in doc["torch_seeds"]] == [0, 1, 2]
    assert doc["summary"]["torch"]["final"]["n"] == 3

    # another configuration in the same file: refused, nothing trained
    monkeypatch.setattr(tc, "F_CONFIG", {**TINY, "epochs": 3})
    with pytest.raises(SystemExit) as e:
        run_main(capsys, "--data-dir", data_dir, "--seeds", 3, "--json", out_json)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "another configuration or data (differs in epochs)" in err
    assert trained == [2]


def test_ctrl_c_loses_only_the_running_seed(data_dir, tmp_path, capsys, monkeypatch, one_thread):
    monkeypatch.setattr(tc, "F_CONFIG", TINY)
    real = tc.torch_lab_f

    def train(raw, seed, **kw):
        if seed == 1:
            raise KeyboardInterrupt
        return real(raw, seed, **kw)

    monkeypatch.setattr(tc, "torch_lab_f", train)
    out_json = tmp_path / "f.json"
    code, _, err = run_main(capsys, "--data-dir", data_dir, "--seeds", 3, "--json", out_json)
    assert code == 130 and err.count("\n") == 1 and "holds the finished seeds (0); run the same command again" in err
    assert [r["seed"] for r in json.loads(out_json.read_text())["torch_seeds"]] == [0]


def test_ctrl_c_while_a_seed_is_written_waits_for_the_file(tmp_path, monkeypatch):
    real_write = tc.atomic.write_json

    def write(path, doc):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of saving
        real_write(path, doc)

    monkeypatch.setattr(tc.atomic, "write_json", write)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted):  # jaxlabs.interrupt's: after the write, not during it
        tc.save_f_json(tmp_path / "f.json", {"lab": "F", "torch_seeds": [{"seed": 0}]})
    assert json.loads((tmp_path / "f.json").read_text())["torch_seeds"] == [{"seed": 0}]
    assert signal.getsignal(signal.SIGINT) is handler  # restored
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written copy beside it


def test_ctrl_c_while_a_seed_is_saved_keeps_that_seed(data_dir, tmp_path, capsys, monkeypatch, one_thread):
    monkeypatch.setattr(tc, "F_CONFIG", TINY)
    real_write = tc.atomic.write_json
    writes = []

    def write(path, doc, **kw):
        writes.append(len(doc["torch_seeds"]))
        if len(doc["torch_seeds"]) == 1:  # seed 0 finished: Ctrl-C while it is written
            os.kill(os.getpid(), signal.SIGINT)
        real_write(path, doc, **kw)

    monkeypatch.setattr(tc.atomic, "write_json", write)
    out_json = tmp_path / "f.json"
    code, _, err = run_main(capsys, "--data-dir", data_dir, "--seeds", 3, "--json", out_json)
    assert code == 130 and writes == [0, 1]  # seed 1 never started
    assert [r["seed"] for r in json.loads(out_json.read_text())["torch_seeds"]] == [0]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"{tc.PROG}: interrupted: ") and "running seed is lost" not in last
    assert "holds the finished seeds (0); run the same command again" in last


def test_main_f_compares_with_jaxlabs_results(data_dir, tmp_path, capsys, monkeypatch, one_thread):
    monkeypatch.setattr(tc, "F_CONFIG", TINY)
    results = fake_results(tmp_path / "out" / "F-schedule", TINY, [[0.0, 1.0], [0.5, 0.5]])
    code, out, _ = run_main(capsys, "--data-dir", data_dir, "--seeds", 1, "--jaxlabs-results", results)
    assert code == 0
    assert "    jaxlabs 0     0.0000  1.0000\n" in out and "    jaxlabs mean  0.2500  0.7500\n" in out
    assert "    jaxlabs: 0.7500 +- 0.2500 (mean +- population std; min 0.5000, max 1.0000) over 2 seeds" in out
    assert "    jaxlabs: +0.5000 +- 0.5000" in out  # the jumps +1 and 0
    assert out.count("PyTorch's seed range") == 2
    assert f"jaxlabs' members on {DATA}" in out and "not the same data" not in out


def test_jaxlabs_results_of_the_real_study(tmp_path):
    accs = [[0.4, 0.5, 0.55, 0.6, 0.62, 0.8, 0.81, 0.82, 0.82, 0.83], [0.4, 0.5, 0.55, 0.6, 0.64, 0.8, 0.8, 0.8, 0.8, 0.81]]
    side = tc.jaxlabs_f(fake_results(tmp_path / "F-schedule", tc.F_CONFIG, accs).parent)  # the folder works too
    assert side["seeds"] == [0, 1] and side["final"] == [0.83, 0.81] and side["data"] == DATA
    assert side["jump"] == pytest.approx([0.18, 0.16]) and side["curves"].shape == (2, 10) and not side["notes"]
    (tmp_path / "F-schedule" / "curves.npz").unlink()
    side = tc.jaxlabs_f(tmp_path / "F-schedule" / "results.json")
    assert side["curves"] is None and side["jump"] == pytest.approx([0.18, 0.16]) and "no curves.npz" in side["notes"][0]


@pytest.mark.parametrize("case", ["missing", "not json", "another study", "quick", "another config", "lab E"])
def test_bad_jaxlabs_results_is_one_line_exit_2(case, tmp_path, capsys, clean_env):
    path = tmp_path / "F-schedule" / "results.json"
    accs = [[0.1] * 10]
    if case == "not json":
        path.parent.mkdir()
        path.write_text("{not json")
    elif case == "another study":
        fake_results(path.parent, tc.F_CONFIG, accs, study="E-best")
    elif case == "quick":
        fake_results(path.parent, tc.F_CONFIG, accs, quick=True)
    elif case == "another config":
        fake_results(path.parent, {**tc.F_CONFIG, "blocks": 1}, accs)
    lab = "E" if case == "lab E" else "F"
    with pytest.raises(SystemExit) as e:
        tc.main([lab, "--data-dir", str(tmp_path / "no-data"), "--jaxlabs-results", str(path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"{tc.PROG}: error: argument --jaxlabs-results: ")
    expected = {"missing": "no such file", "not json": "cannot read", "another study": "'E-best', not F-schedule",
                "quick": "--quick run", "another config": "blocks 1, not 3", "lab E": "only for Lab F"}[case]
    assert expected in err
