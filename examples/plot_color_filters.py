"""
=============================================
Colour filters with a linear decoder
=============================================

UFLDL's "linear decoder" exercise learns features of 8x8 colour patches: 192
numbers per patch (8 x 8 pixels x 3 channels), ZCA-whitened, encoded by a
sparse autoencoder whose output layer is linear instead of a sigmoid. A
sigmoid output can only produce values in [0, 1], but whitened patches take
any real value, so the reconstruction ``W2 a + b2`` is left unsquashed; the
hidden units keep their sigmoid and their sparsity.

The filters come out in two families: grey-level edge detectors (equal
weights on the three channels) and colour-opponent blobs and gradients
(red against green, blue against yellow) -- the same split as in the
tutorial, and in the early visual system.

The data are the two photographs bundled with scikit-learn
(:func:`sklearn.datasets.load_sample_images`).
"""

# %%
# Colour patches
# --------------
# As in :ref:`sphx_glr_auto_examples_plot_natural_image_filters.py`, the
# photographs are scaled to [0, 1], smoothed and subsampled by 3 so that an
# 8x8 patch covers a 24x24 region of the 427 x 640 original. Patches keep
# their channels last and are flattened in C order, ``(8, 8, 3) -> 192``,
# which is the layout :func:`~skaecnn.plotting.plot_filters` expects with
# ``patch_shape=(8, 8, 3)`` and :class:`~skaecnn.ConvPoolTransformer` uses for
# colour images.
import time

import matplotlib.pyplot as plt
import numpy as np
from scipy.ndimage import gaussian_filter
from sklearn.datasets import load_sample_images
from sklearn.feature_extraction.image import extract_patches_2d
from sklearn.pipeline import make_pipeline

from skaecnn import PatchNormalizer, SparseAutoencoderFeatures, ZCAWhitening
from skaecnn.plotting import plot_filters

photos = [photo / 255 for photo in load_sample_images().images]
small = [gaussian_filter(photo, sigma=(1.5, 1.5, 0))[::3, ::3] for photo in photos]
patches = np.concatenate(
    [
        extract_patches_2d(image, (8, 8), max_patches=5000, random_state=seed)
        for seed, image in enumerate(small)
    ]
)
X = patches.reshape(len(patches), -1).astype(np.float32)
print(f"{X.shape[0]} patches of {X.shape[1]} values (8 x 8 x 3)")

# %%
# Encoder
# -------
# Per-patch normalization (over all 192 values: it removes the patch's overall
# brightness and contrast, not its colour), ZCA whitening and a sparse
# autoencoder with ``decoder="linear"``. Per-patch normalization is Coates et
# al.'s preprocessing; UFLDL only subtracts the mean patch, which here leaves
# many filters as flat colour swatches. The autoencoder stops once its loss
# improves by less than ``tol=1e-3`` for 10 iterations: the filters are there
# after about 190 iterations, and UFLDL's 400 barely change them.
encoder = make_pipeline(
    PatchNormalizer(epsilon=10 / 255**2),
    ZCAWhitening(epsilon=1.0),
    SparseAutoencoderFeatures(
        n_components=100,
        decoder="linear",
        sparsity_target=0.01,
        sparsity_weight=3.0,
        alpha=3e-3,
        tol=1e-3,
        random_state=0,
    ),
)
start = time.perf_counter()
encoder.fit(X)
autoencoder = encoder[-1]
print(f"{autoencoder.n_iter_} iterations in {time.perf_counter() - start:.1f} s")

# %%
# A few patches before and after whitening, each tile stretched to its own
# contrast. Whitening keeps the patches recognisable, sharpens their edges and
# exaggerates their colours.
zca = encoder.named_steps["zcawhitening"]
X_white = zca.transform(encoder.named_steps["patchnormalizer"].transform(X[:36]))
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
plot_filters(X[:36], patch_shape=(8, 8, 3), ax=axes[0], title="colour patches")
plot_filters(X_white, patch_shape=(8, 8, 3), ax=axes[1], title="normalized and whitened")
fig.tight_layout()

# %%
# The learned filters
# -------------------
# UFLDL displays ``W * ZCAWhite``: the input weights with the whitening folded
# in, i.e. the filters as they act on (normalized) colour patches. Each
# filter is centred on zero and stretched to its own contrast, so mid-grey is
# zero weight and saturated colours are strong weights.
filters = autoencoder.components_ @ zca.whitening_
fig, ax = plt.subplots(figsize=(7, 7))
plot_filters(filters, patch_shape=(8, 8, 3), ax=ax,
             title="100 colour filters (W ZCA) of 8x8x3 patches")
fig.tight_layout()

# %%
# How much each filter cares about colour: the fraction of its energy that is
# not shared equally by the three channels. Grey-level edge detectors sit near
# 0, colour-opponent filters near 1.
per_channel = filters.reshape(-1, 64, 3)
gray_part = per_channel.mean(axis=2, keepdims=True)
colour_fraction = ((per_channel - gray_part) ** 2).sum(axis=(1, 2)) / (
    per_channel**2
).sum(axis=(1, 2))
fig, ax = plt.subplots(figsize=(6, 3))
ax.hist(colour_fraction, bins=20, range=(0, 1), color="tab:purple")
ax.set_xlabel("fraction of the filter's energy in colour contrast")
ax.set_ylabel("number of filters")
ax.set_title("Grey-level edges and colour-opponent filters")
fig.tight_layout()
plt.show()
