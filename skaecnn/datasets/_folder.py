"""Images from a folder of PNG/JPEG files, optionally one subfolder per class."""

import numpy as np
from matplotlib.image import imread

from ._base import _existing_dir, _result

_SUFFIXES = {".png", ".jpg", ".jpeg"}


def _read(path, as_gray):
    """One image as float64 in [0, 1], (h, w) or (h, w, 3)."""
    try:
        image = np.asarray(imread(path))
    except Exception as exc:  # Pillow and matplotlib raise many kinds
        raise ValueError(f"cannot read image {str(path)!r}: {exc}") from None
    if image.dtype.kind in "ui":
        image = image / np.iinfo(image.dtype).max
    image = image.astype(np.float64)
    if image.ndim == 3:
        image = image[..., :3]  # drop alpha
        if image.shape[2] == 1:
            image = image[..., 0]
    if as_gray and image.ndim == 3:
        image = image @ np.array([0.299, 0.587, 0.114])
    return image


def _center_crop(image, h, w):
    top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    return image[top : top + h, left : left + w]


def load_image_folder(path, *, as_gray=False, return_X_y=False):
    """Load the PNG/JPEG images of a folder, labelled by subfolder if it has any.

    With subfolders, each one is a class (its name in ``target_names``) and
    its images are that class's samples, as in torchvision's ``ImageFolder``;
    without, the images of ``path`` itself are loaded with no target.

    Parameters
    ----------
    path : str or path-like
        The folder.
    as_gray : bool, default=False
        Convert colour images to gray levels (ITU-R 601 luma). Otherwise, if
        any image has colour, gray ones are repeated over three channels.
    return_X_y : bool, default=False
        If True, return ``(images, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes:

        images : ndarray of shape (n, h, w) or (n, h, w, 3), float64 in [0, 1]
            Images of different sizes are centre-cropped to the smallest
            height and width among them.
        target : ndarray of shape (n,) or None
            Class index of each image; None without subfolders.
        target_names : ndarray of str or None
            Subfolder names, sorted.
        filenames : ndarray of str
            Path of each image.
        DESCR : str
            Where the images came from.

    (images, target) : tuple
        If ``return_X_y`` is True.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a folder.
    ValueError
        If it holds no PNG/JPEG image, or an image cannot be read.

    See Also
    --------
    load_digits_images : Small bundled digits, for a first try.

    Examples
    --------
    >>> from skaecnn.datasets import load_image_folder
    >>> photos = load_image_folder("my_photos", as_gray=True)  # doctest: +SKIP
    >>> photos.images.shape  # doctest: +SKIP
    (12, 427, 640)
    """
    folder = _existing_dir(path)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    sources = [(c, folder / c) for c in classes] if classes else [(None, folder)]
    files, target = [], []
    for label, directory in enumerate(d for _, d in sources):
        found = sorted(p for p in directory.iterdir() if p.suffix.lower() in _SUFFIXES)
        files += found
        target += [label] * len(found)
    if not files:
        raise ValueError(
            f"folder {str(folder)!r} holds no .png/.jpg/.jpeg image"
            + (" in its subfolders" if classes else "")
        )
    images = [_read(f, as_gray) for f in files]
    if any(im.ndim == 3 for im in images):
        images = [im if im.ndim == 3 else np.repeat(im[..., None], 3, axis=2) for im in images]
    h = min(im.shape[0] for im in images)
    w = min(im.shape[1] for im in images)
    images = np.stack([_center_crop(im, h, w) for im in images])
    bunch = _result(
        images,
        np.array(target) if classes else None,
        np.array(classes) if classes else None,
        f"{len(files)} images read from {str(folder)!r}.",
        return_X_y,
    )
    if not return_X_y:
        bunch.filenames = np.array([str(f) for f in files])
    return bunch
