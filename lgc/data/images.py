"""Image datasets as difflogic binarises them.

- ``mnist``: 784 grey values in [0, 1]; trains on grey values, evaluates and compiles on x > 0.5
  (difflogic evaluates on ``x.round()``, which is the same on /255 pixels).
- ``mnist20x20``: the 4-pixel border cropped (400 inputs), same rule.
- ``fashion-mnist``: same format and rule as ``mnist``.
- ``cifar-10-3-thresholds`` / ``cifar-10-31-thresholds``: 3072 values in [0, 1] (channel-major),
  n thresholds (i+1)/(n+1) per value: 9216 / 95232 input bits; trains on the bits.
Reading MNIST costs ~1 s (gzip); CIFAR-10 ~5 s (tarball of pickles).
"""
from __future__ import annotations

import gzip
import io
import os
import pathlib
import pickle
import tarfile

import numpy as np

from .dataset import Dataset, level_thresholds
from .files import fetch, data_root

_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (``.gz`` or plain): uint8 array of the declared shape."""
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file (bad magic {data[:4]!r})")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: idx header says shape {shape} but holds {body.size} bytes (truncated?)")
    return body.reshape(shape)


def load_mnist_like(name: str = "mnist", data_dir: str | os.PathLike | None = None, *, download: bool = True,
                    crop: int = 0) -> Dataset:
    """MNIST or Fashion-MNIST from idx(.gz) files in ``<data_dir>/<name>/``; ``crop`` pixels are
    removed from each border (``crop=4`` gives difflogic's mnist20x20)."""
    folder_name = "fashion-mnist" if name.startswith("fashion") else "mnist"
    folder = data_root(data_dir) / folder_name
    wanted = {k: (f"{v}.gz", v) for k, v in _MNIST_FILES.items()}
    urls = {k: [m + f"{v}.gz" for m in _MIRRORS[folder_name]] for k, v in _MNIST_FILES.items()}
    files = fetch(folder, wanted, urls, download=download, dataset=name)
    arrays = {k: read_idx(p) for k, p in files.items()}
    xs = []
    for split in ("train", "test"):
        img = arrays[f"{split}_images"]
        if img.ndim != 3 or len(img) != len(arrays[f"{split}_labels"]):
            raise ValueError(f"{name}: {split} images {img.shape} and labels {arrays[f'{split}_labels'].shape} do not match")
        if crop:
            img = img[:, crop:-crop, crop:-crop]
        xs.append((img.reshape(len(img), -1).astype(np.float32) / 255.0))
    side = arrays["train_images"].shape[1] - 2 * crop
    return Dataset(name=name, x_train=xs[0], y_train=arrays["train_labels"].astype(np.int64),
                   x_test=xs[1], y_test=arrays["test_labels"].astype(np.int64),
                   thresholds=np.array([[0.5]]), num_classes=10, train_on_raw=True,
                   class_names=FASHION_CLASSES if folder_name == "fashion-mnist" else MNIST_CLASSES,
                   description=f"{side}x{side} grey images; trains on grey values in [0, 1], "
                               "evaluates and compiles on x > 0.5")


def load_cifar10(levels: int, data_dir: str | os.PathLike | None = None, *, download: bool = True) -> Dataset:
    """CIFAR-10 from ``<data_dir>/cifar-10/cifar-10-python.tar.gz`` (or its extracted
    ``cifar-10-batches-py/``), binarised with ``levels`` thresholds per channel value."""
    folder = data_root(data_dir) / "cifar-10"
    extracted = folder / "cifar-10-batches-py"
    if extracted.is_dir() and (extracted / "test_batch").is_file():
        batches = {p.name: _unpickle(p.read_bytes()) for p in extracted.iterdir() if "_batch" in p.name}
    else:
        tar_path = fetch(folder, {"tar": ("cifar-10-python.tar.gz",)}, {"tar": [CIFAR_URL]}, download=download,
                         dataset=f"cifar-10-{levels}-thresholds")["tar"]
        batches = {}
        with tarfile.open(tar_path, "r:gz") as tar:
            for member in tar.getmembers():
                base = os.path.basename(member.name)
                if base.startswith("data_batch_") or base == "test_batch":
                    batches[base] = _unpickle(tar.extractfile(member).read())  # type: ignore[union-attr]
    train_names = [f"data_batch_{i}" for i in range(1, 6)]
    if any(n not in batches for n in [*train_names, "test_batch"]):
        raise ValueError(f"cifar-10: the archive lacks some of {train_names + ['test_batch']}")

    def stack(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        x = np.concatenate([np.asarray(batches[n][b"data"], np.uint8) for n in names])
        y = np.concatenate([np.asarray(batches[n][b"labels"], np.int64) for n in names])
        return x.astype(np.float32) / 255.0, y

    x_train, y_train = stack(train_names)
    x_test, y_test = stack(["test_batch"])
    return Dataset(name=f"cifar-10-{levels}-thresholds", x_train=x_train, y_train=y_train, x_test=x_test,
                   y_test=y_test, thresholds=level_thresholds(levels), num_classes=10, class_names=CIFAR_CLASSES,
                   description=f"32x32x3 images, {levels} thresholds (i+1)/{levels + 1} per channel value")


class _ArrayUnpickler(pickle.Unpickler):
    """CIFAR-10's python batches are pickles; this reads plain containers and numpy arrays only, so a
    doctored file is refused instead of running code."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused: the file asks for {module}.{name}, not a numpy array or plain data")


def _unpickle(data: bytes) -> dict:
    try:
        return _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise ValueError(f"cifar-10: {e}") from None
