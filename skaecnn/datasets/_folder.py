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


def _visible(folder):
    """Entries of ``folder``, without hidden ones (``.ipynb_checkpoints``, dotfiles)."""
    return (p for p in folder.iterdir() if not p.name.startswith("."))


def _images_in(folder):
    """The PNG/JPEG files directly in ``folder``, sorted."""
    return sorted(
        p for p in _visible(folder) if p.is_file() and p.suffix.lower() in _SUFFIXES
    )


def load_image_folder(path, *, as_gray=False, return_X_y=False):
    """Load the PNG/JPEG images of a folder, labelled by subfolder if it has any.

    With subfolders, each one is a class (its name in ``target_names``) and
    its images are that class's samples, as in torchvision's ``ImageFolder``;
    without, the images of ``path`` itself are loaded with no target. Hidden
    files and folders (names starting with ``.``, such as
    ``.ipynb_checkpoints``) are ignored. A folder holding both images and
    subfolders is refused rather than silently dropping either; images inside
    class subfolders' own subfolders are not read.

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
            All images must have the same height and width.
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
        If ``path`` does not exist.
    NotADirectoryError
        If ``path`` is a file.
    ValueError
        If it holds no PNG/JPEG image, holds both images and subfolders, an
        image cannot be read, or two images differ in size.

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
    classes = sorted(p.name for p in _visible(folder) if p.is_dir())
    top_images = _images_in(folder)
    if classes and top_images:
        raise ValueError(
            f"folder {str(folder)!r} holds both images ({top_images[0].name!r}, ...) "
            f"and subfolders ({classes[0]!r}, ...): put every image in a class "
            "subfolder, or move the subfolders out for an unlabelled folder"
        )
    sources = [folder / c for c in classes] if classes else [folder]
    files, target = [], []
    for label, directory in enumerate(sources):
        found = _images_in(directory)
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
    sizes = [im.shape[:2] for im in images]
    for f, size in zip(files, sizes):
        if size != sizes[0]:
            raise ValueError(
                f"images must all have the same size: {str(files[0])!r} is "
                f"{sizes[0][0]} x {sizes[0][1]} but {str(f)!r} is {size[0]} x {size[1]}"
            )
    images = np.stack(images)
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
