"""Class-per-folder image data (jaxlabs.data.imagefolder) on tiny PNG/JPEG trees written here."""
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from tiny_data import cifar_batches, write_cifar_folder, write_image_folder, zip_folder

from jaxlabs.data import ImageFolderError, load_dataset, load_image_folder

ARRAY_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
# Written out of order: the labels must follow the sorted names, not the writing order.
COUNTS = {"train": {"zebra": 2, "ant": 3, "cat": 1}, "test": {"cat": 1, "zebra": 1, "ant": 2}}
TEN_CLASSES = {s: {f"class{k}": 1 for k in range(10)} for s in ("train", "test")}


def assert_same_arrays(a, b):
    for key in ARRAY_KEYS:
        np.testing.assert_array_equal(a[key], b[key])
        assert a[key].dtype == b[key].dtype


def test_labels_follow_sorted_class_names_and_pixels_are_exact(tmp_path):
    written = write_image_folder(tmp_path / "tree", COUNTS)
    data = load_image_folder(tmp_path / "tree")
    assert data["class_names"] == ("ant", "cat", "zebra")
    assert data["train_images"].shape == (6, 4, 4, 3) and data["train_images"].dtype == np.uint8
    assert data["train_labels"].dtype == np.int32
    np.testing.assert_array_equal(data["train_labels"], [0, 0, 0, 1, 2, 2])
    np.testing.assert_array_equal(data["test_labels"], [0, 0, 1, 2])
    # PNG is lossless: the pixels come back exactly, classes sorted, files in name order.
    for split in ("train", "test"):
        expected = [image for name in data["class_names"] for image in written[split][name]]
        np.testing.assert_array_equal(data[f"{split}_images"], np.stack(expected))
    assert data["source"] == "tree (image folder of PNG files)"


@pytest.mark.parametrize("top", [None, "my-copy"])
def test_zip_gives_the_folders_arrays(tmp_path, top):
    write_image_folder(tmp_path / "tree", COUNTS, size=8, suffix=".jpg")
    (tmp_path / "tree" / "train" / "notes.txt").write_text("not an image, skipped")
    (tmp_path / "tree" / "train" / "ant" / ".DS_Store").write_bytes(b"\0junk")
    from_folder = load_image_folder(tmp_path / "tree")
    from_zip = load_image_folder(zip_folder(tmp_path / "tree", tmp_path / "copy.zip", top=top))
    assert_same_arrays(from_folder, from_zip)
    assert from_zip["class_names"] == from_folder["class_names"]
    assert from_zip["train_images"].shape == (6, 8, 8, 3)
    assert from_zip["source"] == f"{top or 'copy'} (image folder of JPEG files)"


def test_grayscale_kept_as_one_channel_unless_mixed_with_rgb(tmp_path):
    written = write_image_folder(tmp_path / "gray", COUNTS, gray=True)
    data = load_image_folder(tmp_path / "gray")
    assert data["train_images"].shape == (6, 4, 4, 1)
    np.testing.assert_array_equal(data["train_images"][0, ..., 0], written["train"]["ant"][0])
    # One RGB image among the gray ones: all become RGB, the gray ones with three equal channels.
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "gray" / "test" / "cat" / "rgb.png")
    data = load_image_folder(tmp_path / "gray")
    assert data["train_images"].shape == (6, 4, 4, 3)
    np.testing.assert_array_equal(data["train_images"][0], np.repeat(written["train"]["ant"][0][..., None], 3, -1))


def test_load_dataset_finds_an_image_folder_copy_of_cifar10(clean_env):
    written = write_image_folder(clean_env / "d" / "cifar10-jpeg", TEN_CLASSES)
    (clean_env / "z").mkdir()
    zip_folder(clean_env / "d" / "cifar10-jpeg", clean_env / "z" / "cifar10-jpeg.zip", top="cifar10-jpeg")
    tree = load_dataset("cifar10", clean_env / "d" / "cifar10-jpeg")  # the tree itself
    assert tree["train_images"].shape == (10, 4, 4, 3)
    np.testing.assert_array_equal(tree["test_labels"], np.arange(10))
    np.testing.assert_array_equal(tree["train_images"][3], written["train"]["class3"][0])
    assert tree["source"] == "cifar10-jpeg (PNG copy of CIFAR-10)"  # never reported as CIFAR-10 itself
    for data_dir in (clean_env / "d", clean_env / "z", clean_env / "z" / "cifar10-jpeg.zip"):
        found = load_dataset("cifar10", data_dir)  # a folder holding the tree or the zip, or the zip
        assert_same_arrays(found, tree)
        assert found["source"] == tree["source"]


def test_load_dataset_prefers_the_original_and_checks_the_class_count(clean_env):
    write_image_folder(clean_env / "d" / "cifar10-jpeg", TEN_CLASSES)
    write_cifar_folder(clean_env / "d" / "cifar10" / "cifar-10-batches-py", cifar_batches(n=2))
    original = load_dataset("cifar10", clean_env / "d")
    assert original["train_images"].shape == (10, 32, 32, 3) and "source" not in original
    write_image_folder(clean_env / "three", COUNTS)
    with pytest.raises(ImageFolderError, match=r"three: 3 class folders \(ant, cat, zebra\) but cifar10 has 10"):
        load_dataset("cifar10", clean_env / "three")


def test_load_dataset_finds_a_grayscale_mnist_copy(clean_env):
    write_image_folder(clean_env / "d" / "mnist-png", TEN_CLASSES, size=8, gray=True)
    data = load_dataset("mnist", clean_env / "d")
    assert data["train_images"].shape == (10, 8, 8, 1) and data["source"] == "mnist-png (PNG copy of MNIST)"


def test_missing_dataset_error_mentions_image_folders(clean_env):
    (clean_env / "empty").mkdir()  # a folder that exists but holds no copy (a missing one says so instead)
    with pytest.raises(FileNotFoundError, match=r"image-folder copy.*cifar10-jpeg\.zip"):
        load_dataset("cifar10", clean_env / "empty")


# ---------------------------------------------------------------- one-line errors naming the problem

def error_of(path):
    with pytest.raises(ImageFolderError) as info:
        load_image_folder(path)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("as_zip", [False, True])
def test_empty_class_folder(tmp_path, as_zip):
    write_image_folder(tmp_path / "tree", COUNTS)
    (tmp_path / "tree" / "test" / "bee").mkdir()
    (tmp_path / "tree" / "train" / "bee").mkdir()
    (tmp_path / "tree" / "train" / "bee" / "readme.txt").write_text("no images here")
    path = zip_folder(tmp_path / "tree", tmp_path / "t.zip") if as_zip else tmp_path / "tree"
    message = error_of(path)
    assert message.startswith(str(path)) and "class folder train/bee/ has no .jpg/.jpeg/.png images" in message


def test_mixed_image_sizes(tmp_path):
    write_image_folder(tmp_path / "tree", COUNTS)
    Image.fromarray(np.zeros((8, 6, 3), np.uint8)).save(tmp_path / "tree" / "test" / "cat" / "big.png")
    message = error_of(tmp_path / "tree")
    assert "test/cat/big.png: image is 6x8 but" in message and "ant/000.png is 4x4" in message


@pytest.mark.parametrize("as_zip", [False, True])
def test_corrupt_image(tmp_path, as_zip):
    write_image_folder(tmp_path / "tree", COUNTS, suffix=".jpg")
    good = (tmp_path / "tree" / "train" / "cat" / "000.jpg").read_bytes()
    (tmp_path / "tree" / "train" / "cat" / "001.jpg").write_bytes(good[: len(good) // 2])  # truncated
    path = zip_folder(tmp_path / "tree", tmp_path / "t.zip", top="top") if as_zip else tmp_path / "tree"
    message = error_of(path)
    assert "cat/001.jpg: cannot decode the image" in message and "replace or delete" in message
    if as_zip:
        assert f"{path}:top/train/cat/001.jpg" in message
    (tmp_path / "tree" / "train" / "cat" / "001.jpg").write_text("<html>404</html>")  # not an image at all
    assert "cat/001.jpg: cannot decode the image" in error_of(tmp_path / "tree")


def test_a_zip_that_is_not_a_zip(tmp_path):
    (tmp_path / "data.zip").write_text("<html>not found</html>")
    message = error_of(tmp_path / "data.zip")
    assert message.startswith(f"{tmp_path / 'data.zip'}: not a zip archive")


@pytest.mark.parametrize("as_zip", [False, True])
def test_missing_split(tmp_path, as_zip):
    write_image_folder(tmp_path / "tree", {"train": COUNTS["train"]})
    path = zip_folder(tmp_path / "tree", tmp_path / "t.zip") if as_zip else tmp_path / "tree"
    assert "no test/ folder beside train/" in error_of(path)


def test_no_split_at_all(tmp_path):
    (tmp_path / "tree" / "cat").mkdir(parents=True)
    assert "no train/ or test/ folder" in error_of(tmp_path / "tree")
    with zipfile.ZipFile(tmp_path / "t.zip", "w") as archive:
        archive.writestr("cat/0.png", b"")
    assert "no train/ or test/ folder in the zip" in error_of(tmp_path / "t.zip")


def test_no_classes(tmp_path):
    for split in ("train", "test"):
        (tmp_path / "tree" / split).mkdir(parents=True)
    assert "train/ has no class folders" in error_of(tmp_path / "tree")


def test_train_and_test_classes_differ(tmp_path):
    write_image_folder(tmp_path / "tree", {"train": {"ant": 1, "cat": 1}, "test": {"ant": 1, "dog": 1}})
    message = error_of(tmp_path / "tree")
    assert "train/ and test/ have different classes (only in train/: cat; only in test/: dog)" in message


def test_a_study_on_a_copy_names_the_copy_in_records_report_and_tables(clean_env):
    from jaxlabs.reproduce import run_study, sweep_study
    from jaxlabs.tasks import get_task

    write_image_folder(clean_env / "d" / "cifar10-jpeg", TEN_CLASSES, size=8)
    task = get_task("cifar-resnet20")
    study = sweep_study(task, {"blocks": 1, "width": 4, "epochs": 1, "batch_size": 5}, [0.1], {})
    run_study(study, [0], clean_env / "out", data_dir=str(clean_env / "d"), progress=False)
    name = "cifar10-jpeg (PNG copy of CIFAR-10)"
    meta = json.loads((clean_env / "out" / "results.json").read_text())
    assert meta["data"] == [name]
    assert [m["data"] for m in meta["members"]] == [name]
    assert f"**Data:** {name}." in (clean_env / "out" / "report.md").read_text()
    assert f"on {name}" in (clean_env / "out" / "per_class.md").read_text()


def test_stand_in_data_is_named_as_such():
    from jaxlabs.tasks import get_task

    for task, static in (("cifar-resnet20", {"synthetic": 20, "blocks": 1}), ("mnist-cnn", {"synthetic": 600, "subset": 1.0}),
                         ("fashion-mlp", {"synthetic": 120})):
        t = get_task(task)
        trainer, _ = t.build(t.resolve_static(**static))
        assert trainer.data_name.startswith("synthetic (") and "not " in trainer.data_name
