"""Loaders for image data sets, in the style of :mod:`sklearn.datasets`.

``load_digits_images`` uses the digits bundled with scikit-learn and
``load_image_folder`` reads the user's own PNG/JPEG files. The other
loaders read the official files of MNIST, CIFAR-10 and STL-10 from a folder
the user downloaded them to; nothing is ever downloaded.
"""

from ._cifar10 import load_cifar10
from ._digits import load_digits_images
from ._folder import load_image_folder
from ._mnist import load_mnist
from ._stl10 import load_stl10

__all__ = [
    "load_cifar10",
    "load_digits_images",
    "load_image_folder",
    "load_mnist",
    "load_stl10",
]
