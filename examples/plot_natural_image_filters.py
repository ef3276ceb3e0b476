"""
===================================================
Edge detectors learned from natural image patches
===================================================

The first exercise of Stanford's UFLDL tutorial trains a sparse autoencoder on
small patches of natural photographs. Its hidden units end up as localized,
oriented edge detectors -- much like Gabor filters, or the "simple cells" of
the primary visual cortex (Olshausen & Field, 1996).

The weights between the input layer and the hidden layer are these filters:
hidden unit ``j`` computes ``sigmoid(w_j . x + b_j)`` on an ``8 x 8`` patch
``x`` flattened into 64 numbers, so its 64 weights ``w_j`` reshaped to
``8 x 8`` are the pattern the unit responds to most.

This example does the same with the two photographs bundled with scikit-learn
(:func:`sklearn.datasets.load_sample_images`), in the steps that later make up
the encoder of a :class:`~skaecnn.ConvPoolTransformer`: per-patch
normalization (:class:`~skaecnn.PatchNormalizer`), ZCA whitening
(:class:`~skaecnn.ZCAWhitening`) and a sparse autoencoder with a linear
decoder (:class:`~skaecnn.SparseAutoencoderFeatures`).
"""

# %%
# The photographs
# ---------------
# The two photographs are 427 x 640 JPEG images. At that resolution most 8x8
# patches are nearly flat, and their finest detail is JPEG block artefacts and
# noise. They are turned to grey levels in [0, 1], smoothed with a Gaussian of
# 1.5 pixels and subsampled by 3 (an anti-aliased reduction to 143 x 214), so
# that an 8x8 patch covers a 24x24 region of the original picture.
import time

import matplotlib.pyplot as plt
import numpy as np
from scipy.ndimage import gaussian_filter
from sklearn.datasets import load_sample_images
from sklearn.feature_extraction.image import extract_patches_2d

from skaecnn import PatchNormalizer, SparseAutoencoderFeatures, ZCAWhitening
from skaecnn.plotting import plot_filters

photos = load_sample_images().images  # two uint8 arrays of shape (427, 640, 3)
gray = [photo @ np.array([0.299, 0.587, 0.114]) / 255 for photo in photos]
small = [gaussian_filter(image, sigma=1.5)[::3, ::3] for image in gray]

fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
for ax, image in zip(axes, small):
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"{image.shape[0]} x {image.shape[1]}")
    ax.axis("off")
fig.tight_layout()

# %%
# Random patches
# --------------
# 5,000 random 8x8 patches from each photograph, one row of 64 pixels per
# patch (float32: the autoencoder then trains in single precision).
patches = np.concatenate(
    [
        extract_patches_2d(image, (8, 8), max_patches=5000, random_state=seed)
        for seed, image in enumerate(small)
    ]
)
X = patches.reshape(len(patches), -1).astype(np.float32)
print(f"{X.shape[0]} patches of {X.shape[1]} pixels")

# %%
# Normalization and whitening
# ---------------------------
# :class:`~skaecnn.PatchNormalizer` removes each patch's brightness and
# contrast: ``(x - mean(x)) / sqrt(var(x) + epsilon)``. Coates et al.'s
# ``epsilon = 10`` for pixels in [0, 255] becomes ``10 / 255**2`` for [0, 1].
#
# Neighbouring pixels are strongly correlated, so the variance of the patches
# is concentrated in a few smooth directions. :class:`~skaecnn.ZCAWhitening`
# rescales every principal direction to unit variance (plus ``epsilon`` in
# the denominator) and rotates back to pixel space: whitened patches still
# look like patches, with their edges emphasized. Without whitening an
# autoencoder mostly learns the smooth, high-variance directions (its filters
# come out as broad gradients). ``epsilon`` bounds the gain on the
# low-variance directions. Here it is 0.5, more than the usual 0.1: the
# smallest eigenvalues printed below belong to the finest, checkerboard-like
# frequencies, mostly noise and compression artefacts in these photographs,
# and whitening them fully makes the autoencoder spend many units on them.
# Much larger values bring the broad gradients back.
#
# Below, the first 49 patches before and after, each tile stretched to its own
# contrast (which hides the effect of the normalization): whitening keeps the
# shapes and brings out their edges.
normalizer = PatchNormalizer(epsilon=10 / 255**2)
zca = ZCAWhitening(epsilon=0.5)
X_normalized = normalizer.fit_transform(X)
X_white = zca.fit_transform(X_normalized)
print("eigenvalues of the normalized patches:",
      np.array2string(zca.eigenvalues_[::-1][[0, 1, 2, 7, 15, 31, 62]], precision=3))

fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, data, title in zip(
    axes, (X, X_white), ("raw patches", "normalized and ZCA-whitened")
):
    plot_filters(data[:49], patch_shape=(8, 8), ax=ax, title=title)
fig.tight_layout()

# %%
# The sparse autoencoder
# ----------------------
# 100 hidden units, each asked to be active on average only 1% of the time
# (``sparsity_target=0.01``, ``sparsity_weight=3``, the values of UFLDL's
# first exercise), with weight decay ``alpha=3e-3`` and a linear decoder
# (whitened values are not confined to [0, 1], so the reconstruction is not
# squashed by a sigmoid). L-BFGS stops once the loss improves by less than
# ``tol=1e-3`` for 10 iterations: the filters have settled by then, in fewer
# iterations than UFLDL's 400.
autoencoder = SparseAutoencoderFeatures(
    n_components=100,
    decoder="linear",
    sparsity_target=0.01,
    sparsity_weight=3.0,
    alpha=3e-3,
    tol=1e-3,
    random_state=0,
)
start = time.perf_counter()
autoencoder.fit(X_white)
print(f"{autoencoder.n_iter_} iterations in {time.perf_counter() - start:.1f} s, "
      f"final objective {autoencoder.loss_:.3f}")
print(f"mean hidden activation: {autoencoder.transform(X_white).mean():.3f}")

# %%
# The learned filters
# -------------------
# Each tile is one row of ``components_`` (the input-to-hidden weights)
# reshaped to 8x8, drawn with its own contrast. Most are localized edge and
# bar detectors at every position and orientation; a few are smoother
# gradients or small gratings.
fig, ax = plt.subplots(figsize=(7, 7))
plot_filters(autoencoder, patch_shape=(8, 8), ax=ax,
             title="100 filters learned from whitened 8x8 patches")
fig.tight_layout()

# %%
# The weights act on whitened patches. Folding the whitening into them,
# ``components_ @ whitening_`` (UFLDL's ``W * ZCAWhite``), gives the filters
# that act on the normalized patches directly -- the ``filters_`` a
# :class:`~skaecnn.ConvPoolTransformer` with this encoder would convolve over
# the image. They show the same edges, with more fine-grained texture: the
# whitening matrix amplifies the high spatial frequencies.
fig, ax = plt.subplots(figsize=(7, 7))
plot_filters(autoencoder.components_ @ zca.whitening_, patch_shape=(8, 8), ax=ax,
             title="the same filters, whitening folded in")
fig.tight_layout()
plt.show()
