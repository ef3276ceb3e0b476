"""Tests of the data set loaders on tiny files written in each official format.

The files are built here from the format descriptions, independently of the
loaders' code, with random (hence asymmetric) pixels so that a transposed or
flipped layout is caught.
"""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.datasets import load_digits
from sklearn.utils import Bunch

from skaecnn.datasets import (
    load_cifar10,
    load_digits_images,
    load_image_folder,
    load_mnist,
    load_stl10,
)

CIFAR_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
STL_NAMES = [
    "airplane", "bird", "car", "cat", "deer",
    "dog", "horse", "monkey", "ship", "truck",
]  # fmt: skip


def random_images(n, side, channels=None, seed=0):
    shape = (n, side, side) if channels is None else (n, side, side, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def random_labels(n, seed=0):
    return np.random.default_rng(seed).integers(0, 10, n).astype(np.int64)


def planar(images, column_major=False):
    """Flatten (n, h, w, c) images as c planes of h x w, rows or columns first."""
    n, h, w, c = images.shape
    row, col, ch = np.indices((h, w, c))
    offset = ch * h * w + (col * h + row if column_major else row * w + col)
    flat = np.empty((n, h * w * c), dtype=np.uint8)
    flat[:, offset.ravel()] = images.reshape(n, -1)
    return flat


def check_bunch(bunch, images, target, target_names):
    assert isinstance(bunch, Bunch)
    assert {"images", "target", "target_names", "DESCR"} <= bunch.keys()
    assert bunch.images.dtype == images.dtype
    assert_array_equal(bunch.images, images)
    if target is None:
        assert bunch.target is None
    else:
        assert bunch.target.dtype == np.int64
        assert_array_equal(bunch.target, target)
    assert list(bunch.target_names) == list(target_names)
    assert isinstance(bunch.DESCR, str) and len(bunch.DESCR) > 100


# --- digits ------------------------------------------------------------------


def test_digits_images():
    bunch = load_digits_images()
    digits = load_digits()
    assert bunch.images.shape == (1797, 8, 8)
    assert bunch.images.dtype == np.float64
    assert_array_equal(bunch.images, digits.images / 16)
    assert bunch.images.min() == 0 and bunch.images.max() == 1
    check_bunch(bunch, bunch.images, digits.target, range(10))
    images, target = load_digits_images(return_X_y=True)
    assert_array_equal(images, bunch.images)
    assert_array_equal(target, bunch.target)


# --- MNIST -------------------------------------------------------------------


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array):
    magic = bytes([0, 0, 0x08, array.ndim])  # unsigned bytes, ndim dimensions
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    return magic + dims + array.astype(np.uint8).tobytes()


def write_file(path, data, gz=False):
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def write_mnist(folder, subset="train", n=4, gz=False, seed=0):
    images = random_images(n, 28, seed=seed)
    labels = random_labels(n, seed=seed)
    images_name, labels_name = MNIST_FILES[subset]
    write_file(folder / images_name, idx_bytes(images), gz)
    write_file(folder / labels_name, idx_bytes(labels), gz)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("subset", ["train", "test"])
def test_mnist_reads_idx_files(tmp_path, subset, gz):
    images, labels = write_mnist(tmp_path, subset, gz=gz, seed=len(subset))
    bunch = load_mnist(tmp_path, subset)
    check_bunch(bunch, images, labels, range(10))
    assert bunch.images.shape == (4, 28, 28)
    X, y = load_mnist(str(tmp_path), subset=subset, return_X_y=True)
    assert_array_equal(X, images)
    assert_array_equal(y, labels)


def test_mnist_prefers_uncompressed_file(tmp_path):
    images, _ = write_mnist(tmp_path, gz=False, seed=1)
    write_mnist(tmp_path, gz=True, seed=2)
    assert_array_equal(load_mnist(tmp_path).images, images)


def test_mnist_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_mnist(tmp_path / "nowhere")
    write_mnist(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path, "test")
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("subset", ["validation", "TRAIN", None])
def test_mnist_bad_subset(tmp_path, subset):
    write_mnist(tmp_path)
    with pytest.raises(ValueError, match="subset"):
        load_mnist(tmp_path, subset)


@pytest.mark.parametrize(
    "header, match",
    [
        (b"\x01\x00\x08\x03", "two zero bytes"),
        (b"\x00\x00\x0b\x03", "type 0x0B"),
        (b"\x00\x00\x08\x02", "2 dimensions"),
    ],
)
def test_mnist_bad_magic(tmp_path, header, match):
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(header + path.read_bytes()[4:])
    with pytest.raises(ValueError, match=match) as info:
        load_mnist(tmp_path)
    assert str(path) in str(info.value)


def test_mnist_labels_must_be_1d(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros((4, 1))))
    with pytest.raises(ValueError, match="expected type 0x08 .* with 1"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_truncated(tmp_path, gz):
    write_mnist(tmp_path, gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    path = tmp_path / name
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ValueError, match=name):
        load_mnist(tmp_path)


def test_mnist_truncated_header_and_extra_bytes(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    data = path.read_bytes()
    path.write_bytes(data + b"\0")
    with pytest.raises(ValueError, match="header announces shape"):
        load_mnist(tmp_path)
    for size in (2, 10):
        path.write_bytes(data[:size])
        with pytest.raises(ValueError, match="truncated inside its header"):
            load_mnist(tmp_path)


def test_mnist_not_gzip(tmp_path):
    write_mnist(tmp_path, gz=True)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip data at all")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path)


def test_mnist_huge_header_shape(tmp_path):
    header = struct.pack(">HBB", 0, 8, 3) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 28)
    write_mnist(tmp_path, n=4)
    write_file(tmp_path / "train-images-idx3-ubyte", header + bytes(10))
    with pytest.raises(ValueError, match="header announcing shape .* corrupt"):
        load_mnist(tmp_path)


def test_mnist_count_mismatch(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(random_labels(3)))
    with pytest.raises(ValueError, match="4 images .* 3 labels"):
        load_mnist(tmp_path)


def test_mnist_label_out_of_range(tmp_path):
    write_mnist(tmp_path)
    bad = idx_bytes(np.array([0, 1, 10, 2]))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bad)
    with pytest.raises(ValueError, match="outside 0..9"):
        load_mnist(tmp_path)


# --- CIFAR-10 ----------------------------------------------------------------


CIFAR_BATCHES = {
    "train": [f"data_batch_{i}" for i in range(1, 6)],
    "test": ["test_batch"],
}


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str``, like the official CIFAR-10 pickles."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(obj):
    """A pickle shaped like the official ones (Python 2, numpy 1.x)."""
    out = []

    class Sink:
        write = out.append

    Py2Pickler(Sink(), protocol=2).dump(obj)
    new, old = b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"
    return b"".join(out).replace(new, old)


PICKLERS = {
    "py2": py2_pickle,
    "protocol2": lambda obj: pickle.dumps(obj, protocol=2),
    "protocol5": lambda obj: pickle.dumps(obj, protocol=5),
}


def write_cifar(folder, subset="train", fmt="bin", n=2, dumps=py2_pickle, seed=0):
    """Write n images per batch file; return all images and labels."""
    folder.mkdir(parents=True, exist_ok=True)
    all_images, all_labels = [], []
    for i, name in enumerate(CIFAR_BATCHES[subset]):
        images = random_images(n, 32, 3, seed=seed + i)
        labels = random_labels(n, seed=seed + i)
        if fmt == "bin":
            records = np.column_stack([labels.astype(np.uint8), planar(images)])
            (folder / f"{name}.bin").write_bytes(records.tobytes())
        else:
            batch = {
                b"batch_label": b"batch %d" % i,
                b"labels": labels.tolist(),
                b"data": planar(images),
                b"filenames": [b"img%d.png" % j for j in range(n)],
            }
            (folder / name).write_bytes(dumps(batch))
        all_images.append(images)
        all_labels.append(labels)
    return np.concatenate(all_images), np.concatenate(all_labels)


@pytest.mark.parametrize("subset", ["train", "test"])
@pytest.mark.parametrize("point_inside", [False, True])
def test_cifar10_binary(tmp_path, subset, point_inside):
    folder = tmp_path / "cifar-10-batches-bin"
    images, labels = write_cifar(folder, subset)
    bunch = load_cifar10(folder if point_inside else tmp_path, subset)
    check_bunch(bunch, images, labels, CIFAR_NAMES)
    assert bunch.images.shape == (len(images), 32, 32, 3)
    assert bunch.images.flags.c_contiguous
    X, y = load_cifar10(tmp_path, subset, return_X_y=True)
    assert_array_equal(X, images)
    assert_array_equal(y, labels)


def test_cifar10_binary_class_names_from_meta(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    write_cifar(folder, "test")
    names = [f"class {i}" for i in range(10)]
    (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    assert list(load_cifar10(tmp_path, "test").target_names) == names


@pytest.mark.parametrize("dumps", PICKLERS.values(), ids=PICKLERS.keys())
@pytest.mark.parametrize("subset", ["train", "test"])
def test_cifar10_python(tmp_path, subset, dumps):
    folder = tmp_path / "cifar-10-batches-py"
    images, labels = write_cifar(folder, subset, fmt="py", dumps=dumps)
    names = [f"name {i}".encode() for i in range(10)]
    meta = {b"num_cases_per_batch": 10000, b"label_names": names, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(dumps(meta))
    bunch = load_cifar10(tmp_path, subset)
    check_bunch(bunch, images, labels, [n.decode() for n in names])
    (folder / "batches.meta").unlink()
    assert list(load_cifar10(folder, subset).target_names) == CIFAR_NAMES


def test_cifar10_prefers_binary(tmp_path):
    images, _ = write_cifar(tmp_path / "cifar-10-batches-bin", "test", seed=1)
    write_cifar(tmp_path / "cifar-10-batches-py", "test", fmt="py", seed=2)
    assert_array_equal(load_cifar10(tmp_path, "test").images, images)


def test_cifar10_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_cifar10(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-bin"):
        load_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-bin"
    write_cifar(folder, "train")
    (folder / "data_batch_3.bin").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3.bin"):
        load_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="test_batch"):
        load_cifar10(tmp_path, "test")


def test_cifar10_bad_subset(tmp_path):
    write_cifar(tmp_path, "test")
    with pytest.raises(ValueError, match="subset"):
        load_cifar10(tmp_path, "unlabeled")


def test_cifar10_binary_truncated(tmp_path):
    write_cifar(tmp_path, "test")
    path = tmp_path / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="test_batch.bin.*multiple of the 3073"):
        load_cifar10(tmp_path, "test")
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="test_batch.bin"):
        load_cifar10(tmp_path, "test")


def test_cifar10_binary_bad_label(tmp_path):
    write_cifar(tmp_path, "test")
    path = tmp_path / "test_batch.bin"
    data = bytearray(path.read_bytes())
    data[3073] = 10  # label byte of the second record
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="outside 0..9"):
        load_cifar10(tmp_path, "test")


@pytest.mark.parametrize(
    "content, match",
    [
        (lambda good: good[: len(good) // 2], "not a valid CIFAR-10 pickle"),
        (lambda good: b"garbage", "not a valid CIFAR-10 pickle"),
        (lambda good: pickle.dumps([1, 2, 3]), "expected a dict"),
        (lambda good: pickle.dumps({b"data": b"x", b"labels": []}), "uint8 array"),
        (
            lambda good: pickle.dumps(
                {b"data": planar(random_images(2, 32, 3)), b"labels": [1]}
            ),
            "2 images .* 1 labels",
        ),
    ],
)
def test_cifar10_python_corrupt(tmp_path, content, match):
    write_cifar(tmp_path, "test", fmt="py")
    path = tmp_path / "test_batch"
    path.write_bytes(content(path.read_bytes()))
    with pytest.raises(ValueError, match=match) as info:
        load_cifar10(tmp_path, "test")
    assert str(path) in str(info.value)


class RunsCode:
    """Unpickling this calls os.system, as a malicious data file could."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class CallsEval:
    def __reduce__(self):
        return eval, ("print('pwned')",)


@pytest.mark.parametrize("where", ["test_batch", "batches.meta"])
def test_cifar10_malicious_pickle_never_runs(tmp_path, where):
    write_cifar(tmp_path, "test", fmt="py")
    marker = tmp_path / "pwned"
    payload = {b"data": RunsCode(f"touch {marker}"), b"labels": [], b"x": CallsEval()}
    (tmp_path / where).write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        load_cifar10(tmp_path, "test")
    assert not marker.exists()


def test_cifar10_pickle_refuses_other_codecs(tmp_path):
    write_cifar(tmp_path, "test", fmt="py")
    # _codecs.encode("...", "zlib") through the only allowed non-numpy global.
    crafted = (
        b"\x80\x02c_codecs\nencode\n"
        b"X\x03\x00\x00\x00abcX\x04\x00\x00\x00zlib\x86R."
    )
    (tmp_path / "test_batch").write_bytes(crafted)
    with pytest.raises(ValueError, match="codec"):
        load_cifar10(tmp_path, "test")


# --- STL-10 ------------------------------------------------------------------


def write_stl(folder, subset="train", n=3, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    images = random_images(n, 96, 3, seed=seed)
    records = planar(images, column_major=True)
    (folder / f"{subset}_X.bin").write_bytes(records.tobytes())
    labels = None
    if subset != "unlabeled":
        labels = random_labels(n, seed=seed)
        stored = (labels + 1).astype(np.uint8)  # the files count classes from 1
        (folder / f"{subset}_y.bin").write_bytes(stored.tobytes())
    return images, labels


@pytest.mark.parametrize("subset", ["train", "test", "unlabeled"])
@pytest.mark.parametrize("point_inside", [False, True])
def test_stl10(tmp_path, subset, point_inside):
    folder = tmp_path / "stl10_binary"
    images, labels = write_stl(folder, subset, seed=len(subset))
    bunch = load_stl10(folder if point_inside else tmp_path, subset)
    check_bunch(bunch, images, labels, STL_NAMES)
    assert bunch.images.shape == (3, 96, 96, 3)
    # A lazily transposed, read-only view of the file, not a copy in memory.
    assert isinstance(bunch.images, np.memmap)
    assert not bunch.images.flags.writeable
    X, y = load_stl10(tmp_path, subset, return_X_y=True)
    assert_array_equal(X, images)
    assert (y is None) if labels is None else np.array_equal(y, labels)


def test_stl10_class_names_file(tmp_path):
    write_stl(tmp_path, "test")
    names = [f"class {i}" for i in range(10)]
    (tmp_path / "class_names.txt").write_text("\n".join(names) + "\n")
    assert list(load_stl10(tmp_path, "test").target_names) == names
    (tmp_path / "class_names.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match="class_names.txt"):
        load_stl10(tmp_path, "test")


def test_stl10_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_stl10(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="train_X.bin"):
        load_stl10(tmp_path)
    write_stl(tmp_path, "train")
    (tmp_path / "train_y.bin").unlink()
    with pytest.raises(FileNotFoundError, match="train_y.bin"):
        load_stl10(tmp_path)


def test_stl10_bad_subset(tmp_path):
    write_stl(tmp_path, "train")
    with pytest.raises(ValueError, match="subset"):
        load_stl10(tmp_path, "valid")


def test_stl10_corrupt(tmp_path):
    write_stl(tmp_path, "train")
    images_path, labels_path = tmp_path / "train_X.bin", tmp_path / "train_y.bin"
    good = images_path.read_bytes()
    images_path.write_bytes(good[:-5])
    with pytest.raises(ValueError, match="train_X.bin.*27648"):
        load_stl10(tmp_path)
    images_path.write_bytes(b"")
    with pytest.raises(ValueError, match="train_X.bin"):
        load_stl10(tmp_path)
    images_path.write_bytes(good)
    labels_path.write_bytes(bytes([1, 2]))
    with pytest.raises(ValueError, match="3 images .* 2 labels"):
        load_stl10(tmp_path)
    labels_path.write_bytes(bytes([1, 0, 10]))  # labels run from 1 to 10
    with pytest.raises(ValueError, match="outside 1..10"):
        load_stl10(tmp_path)


# -- load_image_folder ------------------------------------------------------


def _save_png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_with_classes(tmp_path):
    rng = np.random.RandomState(0)
    cats = rng.randint(0, 256, size=(2, 6, 5), dtype=np.uint8)
    dogs = rng.randint(0, 256, size=(1, 6, 5), dtype=np.uint8)
    for i, im in enumerate(cats):
        _save_png(tmp_path / "cat" / f"{i}.png", im)
    _save_png(tmp_path / "dog" / "a.PNG", dogs[0])
    (tmp_path / "notes.txt").write_text("not an image")
    data = load_image_folder(tmp_path)
    assert list(data.target_names) == ["cat", "dog"]
    np.testing.assert_array_equal(data.target, [0, 0, 1])
    np.testing.assert_allclose(data.images, np.concatenate([cats, dogs]) / 255.0)
    assert data.filenames[2].endswith("a.PNG")
    images, target = load_image_folder(tmp_path, return_X_y=True)
    assert images.shape == (3, 6, 5) and target.shape == (3,)


def test_image_folder_flat_mixed_colour(tmp_path):
    rng = np.random.RandomState(1)
    gray = rng.randint(0, 256, size=(6, 7), dtype=np.uint8)
    rgb = rng.randint(0, 256, size=(6, 7, 3), dtype=np.uint8)
    _save_png(tmp_path / "a.png", gray)
    _save_png(tmp_path / "b.png", rgb)
    data = load_image_folder(tmp_path)
    assert data.target is None and data.target_names is None
    assert data.images.shape == (2, 6, 7, 3)
    # The gray image is repeated over the three channels.
    np.testing.assert_allclose(data.images[0, ..., 1], gray / 255.0)
    np.testing.assert_allclose(data.images[1], rgb / 255.0)
    gray_data = load_image_folder(tmp_path, as_gray=True)
    assert gray_data.images.shape == (2, 6, 7)
    np.testing.assert_allclose(
        gray_data.images[1], rgb @ np.array([0.299, 0.587, 0.114]) / 255.0
    )


def test_image_folder_mixed_sizes_name_two_files(tmp_path):
    rng = np.random.RandomState(2)
    for i in range(3):
        _save_png(tmp_path / f"{i}.png", rng.randint(0, 256, size=(8, 8), dtype=np.uint8))
    _save_png(tmp_path / "small.png", rng.randint(0, 256, size=(2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"0.png'? is 8 x 8 but .*small.png'? is 2 x 2"):
        load_image_folder(tmp_path)


def test_image_folder_ignores_hidden_entries(tmp_path):
    image = np.random.RandomState(3).randint(0, 256, size=(4, 4), dtype=np.uint8)
    for cls in ("cat", "dog"):
        _save_png(tmp_path / cls / "a.png", image)
    _save_png(tmp_path / ".ipynb_checkpoints" / "a-checkpoint.png", image)
    _save_png(tmp_path / "cat" / ".hidden.png", image)
    data = load_image_folder(tmp_path)
    assert list(data.target_names) == ["cat", "dog"]
    assert len(data.images) == 2
    # A flat folder with a hidden folder stays a flat folder.
    flat = tmp_path / "cat"
    (flat / ".ipynb_checkpoints").mkdir()
    data = load_image_folder(flat)
    assert data.target is None and len(data.images) == 1


def test_image_folder_images_beside_subfolders_is_an_error(tmp_path):
    image = np.zeros((4, 4), dtype=np.uint8)
    _save_png(tmp_path / "a.png", image)
    _save_png(tmp_path / "thumbs" / "a.png", image)
    with pytest.raises(ValueError, match="both images .*'a.png'.* and subfolders .*'thumbs'"):
        load_image_folder(tmp_path)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        load_image_folder(tmp_path / "file.png")
    (tmp_path / "file.png").unlink()
    with pytest.raises(ValueError, match="holds no .png"):
        load_image_folder(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        load_image_folder(tmp_path)
