"""Data: dataset readers and locators, Boston housing, splits and on-device augmentation."""
from jaxlabs.data.augment import augment, crop_flip, warp
from jaxlabs.data.boston import load_boston
from jaxlabs.data.cifar import CIFARFormatError, load_cifar10
from jaxlabs.data.idx import IDXFormatError, load_idx_folder, read_idx
from jaxlabs.data.imagefolder import ImageFolderError, find_image_folder, load_image_folder
from jaxlabs.data.sources import DatasetNotFoundError, load_dataset
from jaxlabs.data.splits import split_ratio, standardize

__all__ = [
    "augment", "crop_flip", "warp", "load_boston", "CIFARFormatError", "load_cifar10", "IDXFormatError",
    "load_idx_folder", "read_idx", "ImageFolderError", "find_image_folder", "load_image_folder",
    "DatasetNotFoundError", "load_dataset", "split_ratio", "standardize",
]
