"""The 8x8 digits bundled with scikit-learn, as images in [0, 1]."""

import numpy as np
from sklearn.datasets import load_digits

from ._base import _result

DESCR = """\
Optical recognition of handwritten digits (8x8)
-----------------------------------------------

1,797 grey-level images of the handwritten digits 0-9, 8x8 pixels each, as
bundled with scikit-learn (``sklearn.datasets.load_digits``). Each pixel
counts the "on" pixels of a 4x4 block of a 32x32 bitmap (0..16); here it is
divided by 16 so that images lie in [0, 1]. About 180 images per class.

References
----------
E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten Digits",
UCI Machine Learning Repository, 1998. https://doi.org/10.24432/C50P49
"""


def load_digits_images(*, return_X_y=False):
    """Load scikit-learn's bundled 8x8 digits as images scaled to [0, 1].

    The data ship with scikit-learn, so this loader needs no files and is
    handy for quick experiments and examples.

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(images, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes:

        images : ndarray of shape (1797, 8, 8), dtype float64
            Grey-level images, pixel values divided by 16 so they lie in
            [0, 1].
        target : ndarray of shape (1797,), dtype int64
            Digit of each image, 0 to 9.
        target_names : ndarray of shape (10,)
            ``np.arange(10)``.
        DESCR : str
            Description of the data set.

    (images, target) : tuple of ndarray
        If ``return_X_y`` is True.

    See Also
    --------
    sklearn.datasets.load_digits : The same data as flat vectors in 0..16.
    load_mnist : The 28x28 MNIST handwritten digits.

    Notes
    -----
    The pixels are exactly ``sklearn.datasets.load_digits().images / 16``.

    Examples
    --------
    >>> from skaecnn.datasets import load_digits_images
    >>> digits = load_digits_images()
    >>> digits.images.shape
    (1797, 8, 8)
    >>> float(digits.images.min()), float(digits.images.max())
    (0.0, 1.0)
    >>> images, target = load_digits_images(return_X_y=True)
    >>> target[:5]
    array([0, 1, 2, 3, 4])
    """
    digits = load_digits()
    images = digits.images.astype(np.float64) / 16.0
    target = digits.target.astype(np.int64)
    return _result(images, target, np.arange(10), DESCR, return_X_y)
