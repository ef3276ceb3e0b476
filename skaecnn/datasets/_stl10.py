"""Reader for STL-10 in its official binary files, memory-mapped."""

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
STL-10
------

Colour images of 96x96 pixels from ImageNet, made for unsupervised feature
learning: 5,000 labelled training images (500 per class, with 10 predefined
folds), 8,000 labelled test images (800 per class) and 100,000 unlabeled
images drawn from a wider distribution of animals and vehicles. The 10
classes are airplane, bird, car, cat, deer, dog, horse, monkey, ship, truck.
Files and description: https://cs.stanford.edu/~acoates/stl10/

References
----------
A. Coates, H. Lee and A. Y. Ng, "An Analysis of Single-Layer Networks in
Unsupervised Feature Learning", AISTATS 2011.
"""

CLASS_NAMES = (
    "airplane", "bird", "car", "cat", "deer",
    "dog", "horse", "monkey", "ship", "truck",
)  # fmt: skip

_SUBSETS = ("train", "test", "unlabeled")
_SIDE = 96


def load_stl10(path, subset="train", *, return_X_y=False):
    """Load STL-10 from the official binary files, memory-mapped.

    Nothing is downloaded: get the binary files (``stl10_binary.tar.gz``)
    from Adam Coates' STL-10 page at Stanford,
    https://cs.stanford.edu/~acoates/stl10/, and extract them.

    Parameters
    ----------
    path : str or path-like
        Folder holding the extracted ``stl10_binary/``, or that folder itself,
        with ``train_X.bin``, ``train_y.bin``, ``test_X.bin``, ``test_y.bin``,
        ``unlabeled_X.bin`` and ``class_names.txt``.
    subset : {"train", "test", "unlabeled"}, default="train"
        The 5,000 labelled training images, the 8,000 labelled test images,
        or the 100,000 unlabeled images.
    return_X_y : bool, default=False
        If True, return ``(images, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes:

        images : ndarray of shape (n_images, 96, 96, 3), dtype uint8
            RGB images, channels last: ``images[i, row, column, channel]``.
            A read-only, non-contiguous view of a memory map of the file;
            see Notes.
        target : ndarray of shape (n_images,), dtype int64, or None
            Class of each image, 0 to 9 (the files store 1 to 10). None for
            ``subset="unlabeled"``.
        target_names : ndarray of shape (10,)
            Class names, from ``class_names.txt`` when present, else the
            official ones (airplane, bird, car, cat, deer, dog, horse,
            monkey, ship, truck).
        DESCR : str
            Description of the data set.

    (images, target) : tuple
        If ``return_X_y`` is True; ``target`` is None for
        ``subset="unlabeled"``.

    Raises
    ------
    FileNotFoundError
        If the folder or a file of ``subset`` is missing.
    ValueError
        If ``subset`` is unknown, a file is truncated or corrupt (size not a
        multiple of one 27,648-byte image, labels outside 1..10), or the image
        and label counts differ.

    See Also
    --------
    load_cifar10 : CIFAR-10, smaller colour images.
    load_mnist : MNIST handwritten digits.

    Notes
    -----
    The unlabeled images alone take 2.8 GB, so the image file is opened with
    :class:`numpy.memmap` instead of being read: ``images`` is a lazily
    transposed view of it and pixels are read from disk only when used.
    Index it to load a part, e.g. ``images[:1000]`` or
    ``images[rng.choice(len(images), 10000)]``, and call ``np.array(images)``
    to load everything into a writable, contiguous array. The view is
    read-only and keeps the file open while it is alive.

    Each image is stored as 3 planes of 96x96 in column order, so the records
    reshape to ``(n, 3, 96, 96)`` indexed by (channel, column, row) and are
    transposed with axes ``(0, 3, 2, 1)``, as in the reader published with
    the data.

    Examples
    --------
    >>> from skaecnn.datasets import load_stl10
    >>> stl = load_stl10("~/data", subset="unlabeled")  # doctest: +SKIP
    >>> stl.images.shape, stl.target  # doctest: +SKIP
    ((100000, 96, 96, 3), None)
    >>> first = stl.images[:2000] / 255.0  # doctest: +SKIP
    """
    _check_subset(subset, _SUBSETS)
    folder = _existing_dir(path, "stl10_binary")
    images_path = _existing_file(folder, f"{subset}_X.bin", "STL-10 images")
    n = _n_records(
        images_path, images_path.stat().st_size, 3 * _SIDE * _SIDE, "image"
    )
    mapped = np.memmap(images_path, dtype=np.uint8, mode="r")
    images = mapped.reshape(n, 3, _SIDE, _SIDE).transpose(0, 3, 2, 1)
    target = None
    if subset != "unlabeled":
        labels_path = _existing_file(folder, f"{subset}_y.bin", "STL-10 labels")
        labels = np.fromfile(labels_path, dtype=np.uint8)
        _check_same_count(n, images_path, len(labels), labels_path)
        target = _as_labels(labels, len(CLASS_NAMES), labels_path, first=1)
    target_names = _read_class_names(folder / "class_names.txt", CLASS_NAMES)
    return _result(images, target, target_names, DESCR, return_X_y)
