"""Reader for the MNIST handwritten digits in their published IDX files."""

import gzip
import zlib
from pathlib import Path

import numpy as np

from ._base import (
    _as_labels,
    _check_same_count,
    _check_subset,
    _existing_dir,
    _result,
)

DESCR = """\
MNIST handwritten digits
------------------------

70,000 grey-level images of the handwritten digits 0-9 (60,000 for training,
10,000 for testing), 28x28 pixels each, values 0..255 with 0 the background.
The digits were size-normalised and centred by their centre of mass. Files
and description: http://yann.lecun.com/exdb/mnist/

References
----------
Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based learning
applied to document recognition", Proceedings of the IEEE 86(11):2278-2324,
1998.
"""

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# IDX type code of unsigned bytes, the only one MNIST uses.
_UBYTE = 0x08
# Far above MNIST's 47 MB: only a corrupt header claims more.
_MAX_BYTES = 2**34


def _idx_path(folder, name):
    """Path of an IDX file, uncompressed or as the published ``.gz``."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"expected MNIST file {str(folder / name)!r} or its gzipped "
        f"{str(folder / name) + '.gz'!r}, neither exists"
    )


def _read_idx(path, ndim):
    """Read an IDX file of unsigned bytes with ``ndim`` dimensions.

    The header is 2 zero bytes, the type code, the number of dimensions, then
    each dimension as a big-endian uint32; the data follow in C order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4:
                raise ValueError(f"{str(path)!r} is truncated inside its header")
            if magic[:2] != b"\0\0":
                raise ValueError(
                    f"{str(path)!r} is not an IDX file: it must start with two "
                    f"zero bytes, got {magic[:2]!r}"
                )
            if magic[2] != _UBYTE or magic[3] != ndim:
                raise ValueError(
                    f"{str(path)!r} holds IDX type 0x{magic[2]:02X} with "
                    f"{magic[3]} dimensions, expected type 0x{_UBYTE:02X} "
                    f"(unsigned byte) with {ndim}"
                )
            header = f.read(4 * ndim)
            if len(header) < 4 * ndim:
                raise ValueError(f"{str(path)!r} is truncated inside its header")
            shape = tuple(int(d) for d in np.frombuffer(header, dtype=">u4"))
            expected = int(np.prod(shape, dtype=object))
            # Checked before reading: a corrupt header must not make us read
            # (or allocate) the size it claims.
            if expected > _MAX_BYTES:
                raise ValueError(
                    f"{str(path)!r} has a header announcing shape {shape}, that is "
                    f"{expected} bytes, more than any MNIST-style file holds: the "
                    "file is corrupt or is not an IDX file"
                )
            # A bytearray keeps the returned array writable without a copy.
            data = bytearray(f.read())
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        # Truncated or damaged gzip streams land here.
        raise ValueError(f"cannot read {str(path)!r}: {exc}") from exc
    if len(data) != expected:
        raise ValueError(
            f"{str(path)!r} holds {len(data)} data bytes, but its header "
            f"announces shape {shape}, that is {expected} bytes: the file is "
            "truncated or corrupt"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def load_mnist(path, subset="train", *, return_X_y=False):
    """Load the MNIST handwritten digits from the published IDX files.

    Nothing is downloaded: get the four files from Yann LeCun's MNIST page,
    http://yann.lecun.com/exdb/mnist/ (or any mirror of the same files), and
    put them in one folder, gzipped or not.

    Parameters
    ----------
    path : str or path-like
        Folder holding ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte``, each possibly with a ``.gz`` suffix.
        When both exist, the uncompressed file is read.
    subset : {"train", "test"}, default="train"
        The 60,000 training images or the 10,000 test images.
    return_X_y : bool, default=False
        If True, return ``(images, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes:

        images : ndarray of shape (n_images, 28, 28), dtype uint8
            Grey levels 0..255, background 0.
        target : ndarray of shape (n_images,), dtype int64
            Digit of each image, 0 to 9.
        target_names : ndarray of shape (10,)
            ``np.arange(10)``.
        DESCR : str
            Description of the data set.

    (images, target) : tuple of ndarray
        If ``return_X_y`` is True.

    Raises
    ------
    FileNotFoundError
        If the folder or one of the two files of ``subset`` is missing.
    ValueError
        If ``subset`` is unknown, or a file is not a valid IDX file of
        unsigned bytes (bad magic number, wrong number of dimensions, size not
        matching its header, damaged gzip stream), or the image and label
        counts differ.

    See Also
    --------
    load_digits_images : Small 8x8 digits bundled with scikit-learn.
    load_cifar10 : CIFAR-10 colour images.
    load_stl10 : STL-10 colour images.

    Notes
    -----
    The image size is read from the IDX header, so files in the same format
    with other images (such as Fashion-MNIST) load too.

    Examples
    --------
    >>> from skaecnn.datasets import load_mnist
    >>> mnist = load_mnist("~/data/mnist", subset="test")  # doctest: +SKIP
    >>> mnist.images.shape, mnist.images.dtype  # doctest: +SKIP
    ((10000, 28, 28), dtype('uint8'))
    >>> X = mnist.images / 255.0  # doctest: +SKIP
    """
    _check_subset(subset, _FILES)
    folder = _existing_dir(path)
    images_name, labels_name = _FILES[subset]
    images_path = _idx_path(folder, images_name)
    labels_path = _idx_path(folder, labels_name)
    images = _read_idx(images_path, ndim=3)
    labels = _read_idx(labels_path, ndim=1)
    _check_same_count(len(images), images_path, len(labels), labels_path)
    target = _as_labels(labels, 10, labels_path)
    return _result(images, target, np.arange(10), DESCR, return_X_y)
