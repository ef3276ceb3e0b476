"""skaecnn: unsupervised feature learning on images with scikit-learn estimators.

A sparse autoencoder learns filters from image patches; the filters are
convolved over whole images, passed through the activation and pooled into one
feature vector per image, for any scikit-learn classifier.
"""

# Registers the notice printed while numba compiles the kernels.
from . import _compiling  # noqa: F401
from ._autoencoder import SparseAutoencoderFeatures
from ._convnet import ConvNetClassifier
from ._convpool import ConvPoolTransformer
from ._kmeans_triangle import KMeansTriangleFeatures
from ._normalization import PatchNormalizer
from ._stack import ConvPoolStack
from ._validation import DataRangeWarning
from ._whitening import ZCAWhitening

__version__ = "0.1.0"

__all__ = [
    "ConvNetClassifier",
    "ConvPoolStack",
    "ConvPoolTransformer",
    "DataRangeWarning",
    "KMeansTriangleFeatures",
    "PatchNormalizer",
    "SparseAutoencoderFeatures",
    "ZCAWhitening",
    "__version__",
]
