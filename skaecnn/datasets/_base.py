"""Helpers shared by the data set loaders.

Every loader reads files the user downloaded beforehand: nothing here ever
touches the network. The helpers turn every problem with those files into an
error that names the offending path and what was expected, so that a wrong
folder or a half-finished download is easy to diagnose.
"""

from pathlib import Path

import numpy as np
from sklearn.utils import Bunch


def _existing_dir(path, *subdirs):
    """Return the data folder, given the folder holding it or the folder itself.

    Parameters
    ----------
    path : str or path-like
        Folder given by the user; ``~`` is expanded.
    *subdirs : str
        Names of the folders created by extracting the official archives, in
        order of preference. The first one inside ``path`` is returned;
        when there is none, ``path`` itself is.

    Returns
    -------
    folder : pathlib.Path

    Raises
    ------
    NotADirectoryError
        If ``path`` is a file.
    FileNotFoundError
        If ``path`` does not exist.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            f"data folder {str(path)!r} is a file, not a folder: pass the folder "
            "holding the data files"
        )
    if not path.is_dir():
        raise FileNotFoundError(f"data folder {str(path)!r} does not exist")
    for subdir in subdirs:
        if (path / subdir).is_dir():
            return path / subdir
    return path


def _existing_file(folder, name, what):
    """Return ``folder / name``, raising a helpful error if it is missing."""
    path = Path(folder) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"expected {what} file {str(path)!r}, which does not exist"
        )
    return path


def _check_subset(subset, allowed):
    """Raise a ValueError unless ``subset`` is one of ``allowed``."""
    if not isinstance(subset, str) or subset not in allowed:
        raise ValueError(f"subset must be one of {list(allowed)}, got {subset!r}")


def _n_records(path, n_bytes, record_size, what):
    """Number of fixed-size records in a file of ``n_bytes`` bytes.

    A size that is not a positive multiple of the record size means the file
    is truncated or is not the expected file, so it is refused rather than
    silently cut.
    """
    if n_bytes == 0 or n_bytes % record_size:
        raise ValueError(
            f"{str(path)!r} holds {n_bytes} bytes, which is not a positive multiple "
            f"of the {record_size} bytes of one {what}: the file is truncated "
            "or is not the expected file"
        )
    return n_bytes // record_size


def _check_same_count(n_images, images_path, n_labels, labels_path):
    """Raise a ValueError when images and labels do not pair up."""
    if n_images != n_labels:
        raise ValueError(
            f"{str(images_path)!r} holds {n_images} images but "
            f"{str(labels_path)!r} holds {n_labels} labels; they must match"
        )


def _as_labels(raw, n_classes, path, first=0):
    """Check raw labels lie in ``first .. first + n_classes - 1``; return 0-based int64.

    Out-of-range labels mean a corrupt or mismatched file, and would later
    break indexing into ``target_names``.
    """
    labels = np.asarray(raw).astype(np.int64) - first
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"{str(path)!r} holds labels outside {first}..{first + n_classes - 1}: "
            "the file is corrupt or is not the expected file"
        )
    return labels


def _read_class_names(path, default):
    """Class names, one per non-empty line of ``path``, else ``default``."""
    path = Path(path)
    if not path.is_file():
        return np.array(default)
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) != len(default):
        raise ValueError(
            f"{str(path)!r} lists {len(names)} class names, expected {len(default)}"
        )
    return np.array(names)


def _result(images, target, target_names, descr, return_X_y):
    """Return ``(images, target)`` or a Bunch, as scikit-learn's loaders do."""
    if return_X_y:
        return images, target
    return Bunch(
        images=images, target=target, target_names=target_names, DESCR=descr
    )
