"""Reader for CIFAR-10, from the official binary or python version."""

import codecs
import pickle

import numpy as np

from ._base import (
    _as_labels,
    _check_same_count,
    _check_subset,
    _existing_dir,
    _existing_file,
    _n_records,
    _read_class_names,
    _result,
)

DESCR = """\
CIFAR-10
--------

60,000 colour images of 32x32 pixels in 10 classes (airplane, automobile,
bird, cat, deer, dog, frog, horse, ship, truck), 6,000 per class: 50,000
training images in five batches and 10,000 test images. The classes are
mutually exclusive. Files and description:
https://www.cs.toronto.edu/~kriz/cifar.html

References
----------
A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images",
Technical Report, University of Toronto, 2009.
"""

CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

_BATCHES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
_SIDE = 32
_N_PIXELS = 3 * _SIDE * _SIDE


# --- python version: pickles, read without ever running code from them -----


class _ForbiddenGlobalError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list."""


def _latin1_encode(obj, encoding="latin1"):
    # Python 3 pickles of protocol < 3 store bytes as _codecs.encode(str,
    # "latin1"); any other codec is not needed and is refused.
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"refusing codec {encoding!r}")
    return codecs.encode(obj, "latin1")


def _allowed_globals():
    """The only globals a CIFAR-10 pickle needs: what rebuilds numpy arrays."""
    try:  # numpy >= 2
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric
    # The official files (Python 2, numpy 1.x) name numpy.core; re-saved ones
    # may name numpy._core, and protocol 5 rebuilds arrays with _frombuffer.
    return {
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy.core.numeric", "_frombuffer"): numeric._frombuffer,
        ("numpy._core.numeric", "_frombuffer"): numeric._frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays and plain containers.

    Unpickling calls whatever global the file names, so a crafted file could
    run any code; every global outside a fixed allow-list is refused.
    """

    def __init__(self, file, path):
        # "bytes" keeps the Python 2 strings of the official files as bytes,
        # as the reader published with the data does.
        super().__init__(file, encoding="bytes")
        self._path = path
        self._allowed = _allowed_globals()

    def find_class(self, module, name):
        try:
            return self._allowed[module, name]
        except KeyError:
            raise _ForbiddenGlobalError(
                f"{str(self._path)!r} refers to {module}.{name}, which is not "
                "allowed: only numpy arrays, lists, dicts, strings, bytes and "
                "numbers are loaded from CIFAR-10 pickles"
            ) from None


def _unpickle_dict(path, keys):
    """Load the dict in pickle ``path``, with str keys, checking it has ``keys``."""
    with open(path, "rb") as f:
        try:
            obj = _RestrictedUnpickler(f, path).load()
        except _ForbiddenGlobalError:
            raise
        except Exception as exc:  # a damaged pickle can fail in many ways
            raise ValueError(
                f"{str(path)!r} is not a valid CIFAR-10 pickle: {exc!r}"
            ) from exc
    if isinstance(obj, dict):
        obj = {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}
    if not isinstance(obj, dict) or not set(keys) <= obj.keys():
        raise ValueError(
            f"{str(path)!r} is not a CIFAR-10 pickle: expected a dict with "
            f"keys {list(keys)}"
        )
    return obj


def _read_py_batch(path):
    batch = _unpickle_dict(path, ("data", "labels"))
    data, labels = batch["data"], batch["labels"]
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == _N_PIXELS
    ):
        raise ValueError(
            f"{str(path)!r}: expected 'data' to be a uint8 array of shape "
            f"(n_images, {_N_PIXELS})"
        )
    if not isinstance(labels, (list, np.ndarray)):
        raise ValueError(f"{str(path)!r}: expected 'labels' to be a list")
    _check_same_count(len(data), path, len(labels), path)
    return data, labels


def _py_class_names(folder):
    path = folder / "batches.meta"
    if not path.is_file():
        return np.array(CLASS_NAMES)
    names = _unpickle_dict(path, ("label_names",))["label_names"]
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    if len(names) != len(CLASS_NAMES):
        raise ValueError(
            f"{str(path)!r} lists {len(names)} class names, expected "
            f"{len(CLASS_NAMES)}"
        )
    return np.array(names)


# --- binary version: fixed-size records, label byte then pixels ------------


def _read_bin_batch(path):
    n = _n_records(
        path, path.stat().st_size, 1 + _N_PIXELS, "record (1 label + 3072 pixels)"
    )
    records = np.fromfile(path, dtype=np.uint8).reshape(n, 1 + _N_PIXELS)
    return records[:, 1:], records[:, 0]


def _bin_class_names(folder):
    return _read_class_names(folder / "batches.meta.txt", CLASS_NAMES)


_FORMATS = {  # suffix of the batch files, batch reader, class-name reader
    "bin": (".bin", _read_bin_batch, _bin_class_names),
    "py": ("", _read_py_batch, _py_class_names),
}


def load_cifar10(path, subset="train", *, return_X_y=False):
    """Load CIFAR-10 from the official binary or python version.

    Nothing is downloaded: get "CIFAR-10 binary version (suitable for C
    programs)" or "CIFAR-10 python version" from Alex Krizhevsky's page at
    the University of Toronto, https://www.cs.toronto.edu/~kriz/cifar.html,
    and extract it.

    Parameters
    ----------
    path : str or path-like
        Folder holding the extracted ``cifar-10-batches-bin/`` or
        ``cifar-10-batches-py/``, or that folder itself. When both versions
        are there, the binary one is read.
    subset : {"train", "test"}, default="train"
        The 50,000 training images (``data_batch_1`` to ``data_batch_5``) or
        the 10,000 test images (``test_batch``).
    return_X_y : bool, default=False
        If True, return ``(images, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes:

        images : ndarray of shape (n_images, 32, 32, 3), dtype uint8
            RGB images, channels last: ``images[i, row, column, channel]``.
        target : ndarray of shape (n_images,), dtype int64
            Class of each image, 0 to 9.
        target_names : ndarray of shape (10,)
            Class names, from ``batches.meta.txt`` or ``batches.meta`` when
            present, else the official ones (airplane, automobile, bird, cat,
            deer, dog, frog, horse, ship, truck).
        DESCR : str
            Description of the data set.

    (images, target) : tuple of ndarray
        If ``return_X_y`` is True.

    Raises
    ------
    FileNotFoundError
        If the folder or one of the batch files of ``subset`` is missing.
    ValueError
        If ``subset`` is unknown or a file is truncated or corrupt.
    pickle.UnpicklingError
        If a pickle of the python version refers to anything but numpy
        arrays and plain containers (the file was tampered with).

    See Also
    --------
    load_stl10 : STL-10, larger colour images with unlabeled data.
    load_mnist : MNIST handwritten digits.

    Notes
    -----
    The binary version is read directly: each record is one label byte then
    the 1024 red, 1024 green and 1024 blue pixel values, each plane in row
    order. The pickles of the python version are read by a restricted
    unpickler that only rebuilds numpy arrays, lists, dicts, strings, bytes
    and numbers, so a crafted file cannot run code.

    Examples
    --------
    >>> from skaecnn.datasets import load_cifar10
    >>> cifar = load_cifar10("~/data", subset="test")  # doctest: +SKIP
    >>> cifar.images.shape, cifar.images.dtype  # doctest: +SKIP
    ((10000, 32, 32, 3), dtype('uint8'))
    >>> cifar.target_names[cifar.target[0]]  # doctest: +SKIP
    np.str_('cat')
    """
    _check_subset(subset, _BATCHES)
    folder = _existing_dir(path, "cifar-10-batches-bin", "cifar-10-batches-py")
    first = _BATCHES[subset][0]
    for fmt, (suffix, read_batch, class_names) in _FORMATS.items():
        if (folder / f"{first}{suffix}").is_file():
            break
    else:
        raise FileNotFoundError(
            f"no CIFAR-10 data in {str(folder)!r}: expected the folder "
            "cifar-10-batches-bin/ or cifar-10-batches-py/ extracted from the "
            f"official archive, or that folder itself (holding {first}.bin "
            f"or {first})"
        )
    images, target = [], []
    for name in _BATCHES[subset]:
        batch_path = _existing_file(folder, f"{name}{suffix}", f"CIFAR-10 {fmt}")
        data, labels = read_batch(batch_path)
        images.append(data)
        target.append(_as_labels(labels, len(CLASS_NAMES), batch_path))
    # Records store each image as 3 planes of 32x32 (C, H, W): go to H, W, C.
    images = np.concatenate(images).reshape(-1, 3, _SIDE, _SIDE)
    images = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    return _result(
        images, np.concatenate(target), class_names(folder), DESCR, return_X_y
    )
