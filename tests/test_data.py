"""Datasets: loading, the one binarisation rule per dataset, missing-data messages, CSV."""
import gzip
import io
import pickle
import tarfile

import numpy as np
import pytest

from lgc.data import MissingDataError, load_csv, load_dataset, read_idx


def test_mnist_loads_and_binarises(mnist_dir):
    data = load_dataset("mnist", mnist_dir.parent, download=False)
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    assert data.x_train.dtype == np.float32 and 0 <= data.x_train.min() and data.x_train.max() <= 1
    assert data.train_on_raw and data.num_inputs == 784 and data.num_classes == 10
    bits = data.bits(data.x_test[:100])
    # difflogic evaluates on x.round(): the same as x > 0.5 on /255 pixels
    np.testing.assert_array_equal(bits, np.round(data.x_test[:100]) == 1)
    np.testing.assert_array_equal(bits, data.encoder.encode(data.x_test[:100]))


def test_mnist20x20_crops_the_border(mnist_dir):
    full = load_dataset("mnist", mnist_dir.parent, download=False)
    small = load_dataset("mnist20x20", mnist_dir.parent, download=False)
    assert small.num_inputs == 400
    np.testing.assert_array_equal(small.x_test[:5].reshape(5, 20, 20), full.x_test[:5].reshape(5, 28, 28)[:, 4:24, 4:24])
    np.testing.assert_array_equal(small.y_test, full.y_test)


def test_missing_files_name_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.delenv("LGC_DATA_DIR", raising=False)
    with pytest.raises(MissingDataError) as e:
        load_dataset("fashion-mnist", tmp_path, download=False)
    msg = str(e.value)
    assert str(tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz") in msg and "t10k-labels" in msg
    assert "--data-dir" in msg
    with pytest.raises(MissingDataError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar-10-3-thresholds", tmp_path, download=False)


def test_no_download_env_blocks_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("LGC_NO_DOWNLOAD", "1")
    monkeypatch.setenv("LGC_DATA_DIR", str(tmp_path))
    with pytest.raises(MissingDataError, match="downloads are off"):
        load_dataset("mnist")  # download=True, yet the env forbids it: no network touched


def _idx(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def test_idx_reader_plain_gz_and_corrupt(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(_idx(arr))
    (tmp_path / "b.gz").write_bytes(gzip.compress(_idx(arr)))
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "b.gz"), arr)
    (tmp_path / "c").write_bytes(_idx(arr)[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "c")
    (tmp_path / "d").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "d")


def test_fashion_mnist_from_plain_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for split, n in (("train", 20), ("t10k", 7)):
        (folder / f"{split}-images-idx3-ubyte").write_bytes(_idx(rng.integers(0, 256, (n, 28, 28))))
        (folder / f"{split}-labels-idx1-ubyte").write_bytes(_idx(rng.integers(0, 10, n)))
    data = load_dataset("fashion-mnist", tmp_path, download=False)
    assert len(data.y_train) == 20 and len(data.y_test) == 7 and data.class_names[0] == "T-shirt/top"


def test_cifar_thresholds_follow_difflogic(tmp_path):
    rng = np.random.default_rng(1)
    batches = {f"data_batch_{i}": 4 for i in range(1, 6)} | {"test_batch": 3}
    folder = tmp_path / "cifar-10"
    folder.mkdir()
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tar:
        for name, n in batches.items():
            blob = pickle.dumps({b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                                 b"labels": rng.integers(0, 10, n).tolist()})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    data = load_dataset("cifar-10-3-thresholds", tmp_path, download=False)
    assert data.num_inputs == 9216 and len(data.y_train) == 20 and len(data.y_test) == 3
    x = data.x_test
    # difflogic: torch.cat([(x > (i + 1) / 4) for i in range(3)], dim=0) on a [3, 32, 32] image
    expected = np.concatenate([x > (i + 1) / 4 for i in range(3)], axis=1)
    np.testing.assert_array_equal(data.bits(x), expected)
    assert load_dataset("cifar-10-31-thresholds", tmp_path, download=False).num_inputs == 95232


def test_sklearn_digits_quantile_thresholds_from_training_split():
    data = load_dataset("digits")
    assert data.num_features == 64 and data.num_thresholds == 3 and data.num_classes == 10
    assert len(data.y_train) + len(data.y_test) == 1797
    q = np.quantile(data.x_train.astype(np.float64), [0.25, 0.5, 0.75], axis=0).astype(np.float32)
    np.testing.assert_array_equal(data.thresholds, q)
    bits = data.bits(data.x_test)
    assert bits.shape == (len(data.y_test), 192) and bits.dtype == bool
    np.testing.assert_array_equal(bits, data.encoder.encode(data.x_test))
    for name in ("iris", "breast-cancer"):
        d = load_dataset(name)
        assert d.bits(d.x_train).any() and set(np.unique(d.y_train)) == set(range(d.num_classes))


def test_validation_split_is_seeded_and_disjoint():
    data = load_dataset("iris")
    a, (xv, yv) = data.split_validation(0.2, seed=3)
    b, (xv2, _) = data.split_validation(0.2, seed=3)
    np.testing.assert_array_equal(xv, xv2)
    assert len(a.y_train) + len(yv) == len(data.y_train)
    with pytest.raises(ValueError, match="validation fraction"):
        data.split_validation(1.5)


def test_csv_loader_declared_binarisation_and_categories(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["height,colour,weight,label"]
    for i in range(60):
        lines.append(f"{rng.normal():.3f},{['red', 'blue'][i % 2]},{rng.normal():.3f},{'yes' if i % 3 else 'no'}")
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    data = load_csv(path, label="label", binarize="quantile:4")
    assert data.class_names == ["no", "yes"] and data.num_features == 4  # height, colour=blue, colour=red, weight
    assert data.num_thresholds == 4 and data.num_inputs == 16
    np.testing.assert_array_equal(data.thresholds[:, 1], 0.5)  # one-hot columns
    np.testing.assert_array_equal(data.bits(data.x_test), data.encoder.encode(data.x_test))
    same = load_dataset(f"csv:{path}", label="label", binarize="threshold:0")
    assert same.num_inputs == 4
    uni = load_csv(path, label=3, binarize="uniform:2")
    assert uni.num_inputs == 8


def test_csv_errors_are_clear(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(ValueError, match="line 3 has 1 fields"):
        load_csv(path)
    path.write_text("a,b\n1,x\n2,y\n3,x\n")
    with pytest.raises(ValueError, match="no column named 'c'"):
        load_csv(path, label="c")
    with pytest.raises(ValueError, match="unknown binarisation"):
        load_csv(path, label="b", binarize="magic:3")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")
