"""
====================================================
Sparse autoencoder, RBM, PCA and k-means as encoders
====================================================

:class:`~skaecnn.ConvPoolTransformer` does not care what learns the filters:
its ``encoder`` is any scikit-learn transformer of patch vectors, fitted on
random patches and then applied to every window of every image. Here the same
convolution and pooling (``m = 5`` pixel patches of the 8x8 digits, ``k = 24``
features, 2x2 mean pooling of the 4x4 maps) is given four encoders:

* a sparse autoencoder (:class:`~skaecnn.SparseAutoencoderFeatures`) on
  normalized, ZCA-whitened patches, with UFLDL's linear decoder;
* a Bernoulli RBM (:class:`~sklearn.neural_network.BernoulliRBM`) on the raw
  patches, whose pixels lie in [0, 1] as it requires;
* PCA (:class:`~sklearn.decomposition.PCA`, whitened) on normalized patches:
  a linear encoder, so its pooled features are a linear function of the
  (normalized) pixels;
* k-means with Coates et al.'s "triangle" activation
  ``max(0, mean(z) - z_k)`` of the distances ``z_k`` to the centroids
  (:class:`~skaecnn.KMeansTriangleFeatures`) on normalized, whitened patches.

Each feature set feeds the same scaler and logistic regression, and the
accuracy on held-out digits is compared with the same classifier on raw
pixels. The filters are drawn side by side.
"""

# %%
# Data and encoders
# -----------------
import time

import matplotlib.pyplot as plt
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skaecnn import (
    ConvPoolTransformer,
    KMeansTriangleFeatures,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)
from skaecnn.datasets import load_digits_images
from skaecnn.plotting import plot_filters

images, target = load_digits_images(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    images, target, test_size=0.5, stratify=target, random_state=0
)

k = 24  # PCA of normalized 5x5 patches has at most 24 useful components
epsilon = 10 / 255**2  # Coates et al.'s epsilon = 10 for 8-bit pixels, for [0, 1]
# The autoencoder stops once its loss improves by less than ``tol=1e-3`` for
# 10 iterations (about 180): enough for useful features here.

encoders = {
    "sparse autoencoder": make_pipeline(
        PatchNormalizer(epsilon=epsilon),
        ZCAWhitening(epsilon=0.1),
        SparseAutoencoderFeatures(
            n_components=k,
            decoder="linear",
            sparsity_target=0.035,
            sparsity_weight=5.0,
            alpha=3e-3,
            tol=1e-3,
            random_state=0,
        ),
    ),
    "RBM": BernoulliRBM(
        n_components=k, learning_rate=0.1, n_iter=50, batch_size=20, random_state=0
    ),
    "PCA": make_pipeline(
        PatchNormalizer(epsilon=epsilon), PCA(n_components=k, whiten=True, random_state=0)
    ),
    "k-means (triangle)": make_pipeline(
        PatchNormalizer(epsilon=epsilon),
        ZCAWhitening(epsilon=0.1),
        KMeansTriangleFeatures(n_components=k, random_state=0),
    ),
}

# %%
# Learning the features and classifying
# -------------------------------------
# Only the training images are used to fit the encoders (on 5,000 random 5x5
# patches of them) and the classifiers.
convs, scores = {}, {}
for name, encoder in encoders.items():
    start = time.perf_counter()
    conv = ConvPoolTransformer(
        encoder, patch_size=5, pool_size=2, n_patches=5000, random_state=0
    )
    model = make_pipeline(conv, StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(X_train, y_train)
    convs[name], scores[name] = model[0], model.score(X_test, y_test)
    print(
        f"{name:>20}: {model[0].output_shape_} pooled maps, held-out accuracy "
        f"{scores[name]:.3f} ({time.perf_counter() - start:.1f} s)"
    )

raw = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
raw.fit(X_train.reshape(len(X_train), -1), y_train)
scores["raw pixels"] = raw.score(X_test.reshape(len(X_test), -1), y_test)
print(f"{'raw pixels':>20}: held-out accuracy {scores['raw pixels']:.3f}")

# %%
# The filters
# -----------
# Each panel shows what the encoder learned, in the space it was fitted in:
# the rows of ``components_`` (the weights between the input and the hidden
# layer) for the autoencoder, the RBM and PCA, and the ``cluster_centers_`` of
# k-means -- ``plot_filters`` takes them from the last step of the fitted
# ``encoder_``. The autoencoder and k-means saw whitened patches, so their
# weights look like stroke pieces with sharpened edges; the RBM saw raw
# patches, PCA normalized ones (its components are the patches' Fourier-like
# principal directions).
#
# :class:`~skaecnn.ConvPoolTransformer` folds the whitening into these:
# ``conv.filters_`` are the filters as they are convolved with the
# (normalized) image. For k-means the convolution computes the cross term
# ``x'.c_k`` of the distances ``||x' - c_k||^2 = ||x'||^2 - 2 x'.c_k +
# ||c_k||^2`` of every whitened window ``x'``, and ``||x'||^2`` comes from the
# same matrix product.
fig, axes = plt.subplots(1, 4, figsize=(12, 3.6))
for ax, (name, conv) in zip(axes, convs.items()):
    title = f"{name}\naccuracy {scores[name]:.3f}"
    plot_filters(conv.encoder_, patch_shape=(5, 5), n_cols=6, ax=ax, title=title)
fig.suptitle(f"{k} features of 5x5 digit patches, as the encoders learned them")
fig.tight_layout()

# %%
# Accuracy
# --------
# With the same small number of features (96 per image), the two encoders
# that work on whitened patches and respond sparsely -- the sparse autoencoder
# and the k-means triangle encoding -- do best here. PCA only rotates the
# patches: after mean pooling its features are still a linear function of the
# normalized pixels. The RBM, trained on unwhitened patches, learns smooth,
# blob-like filters. The differences are small (0.01 is 9 of the 899 test
# digits); more filters and smaller patches do better still (see
# :ref:`sphx_glr_auto_examples_plot_digits_grid_search.py`).
fig, ax = plt.subplots(figsize=(7, 3.5))
names = list(scores)
bars = ax.barh(names, [scores[n] for n in names],
               color=["tab:blue"] * (len(names) - 1) + ["tab:gray"])
ax.bar_label(bars, fmt="%.3f", padding=3)
ax.set_xlim(0.8, 1.0)
ax.invert_yaxis()
ax.set_xlabel("held-out accuracy (899 test digits)")
ax.set_title("Same convolution, pooling and classifier; different encoders")
fig.tight_layout()
plt.show()
