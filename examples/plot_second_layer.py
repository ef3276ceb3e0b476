"""
===========================================================
A second layer learned from the first layer's pooled maps
===========================================================

A :class:`~skaecnn.ConvPoolTransformer` with ``flatten=False`` returns its
pooled maps as an array of shape ``(n, ph, pw, k)``: an "image" of
``ph x pw`` pixels with one channel per first-layer filter. A second
ConvPoolTransformer takes that array like any multi-channel image: it samples
random ``m2 x m2 x k`` blocks of first-layer activations, learns ``k2``
features of them with a sparse autoencoder, convolves them over the maps and
pools again. This is greedy layer-wise training (UFLDL's "stacked
autoencoders", Coates & Ng's multi-layer networks): each layer is learned
without labels from the output of the layer below.

A second-layer unit is a feature of *first-layer activations*, not of pixels:
it fires for a particular arrangement of strokes and edges, over a region of
the image larger than one first-layer filter. This example learns two layers
on the 8x8 digits, looks at what the second-layer units respond to, and
measures what they add to a logistic regression.
"""

# %%
# Layer 1
# -------
# 32 filters of 3x3 pixels (per-patch normalization, ZCA whitening, sparse
# autoencoder with a linear decoder), giving 6x6 maps, mean-pooled over 2x2
# regions to 3x3. ``flatten=False`` keeps the maps as ``(n, 3, 3, 32)``.
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skaecnn import (
    ConvPoolTransformer,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)
from skaecnn.datasets import load_digits_images
from skaecnn.plotting import plot_feature_maps, plot_filters

images, target = load_digits_images(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    images, target, test_size=0.5, stratify=target, random_state=0
)
# The autoencoders stop once their loss improves by less than ``tol=1e-3`` for
# 10 iterations: their features are useful then.


def sparse_autoencoder(k):
    return SparseAutoencoderFeatures(
        n_components=k,
        decoder="linear",
        sparsity_target=0.035,
        sparsity_weight=5.0,
        alpha=3e-3,
        tol=1e-3,
        random_state=0,
    )


start = time.perf_counter()
layer1 = ConvPoolTransformer(
    make_pipeline(PatchNormalizer(epsilon=10 / 255**2), ZCAWhitening(epsilon=0.1),
                  sparse_autoencoder(32)),
    patch_size=3,
    pool_size=2,
    n_patches=5000,
    flatten=False,
    random_state=0,
)
maps_train = layer1.fit_transform(X_train)
maps_test = layer1.transform(X_test)
print(f"layer 1: {maps_train.shape} pooled maps ({time.perf_counter() - start:.1f} s)")

# %%
# The first-layer filters (``layer1.filters_``: whitening folded in, as they
# are applied to the normalized image):
fig, ax = plt.subplots(figsize=(4, 4))
plot_filters(layer1, ax=ax, title="layer 1: 32 filters of 3x3 pixels")
fig.tight_layout()

# %%
# Their 6x6 activation maps and 3x3 pooled maps on one digit, drawn by
# :func:`~skaecnn.plotting.plot_feature_maps` (first 16 filters). The pooled
# maps are what the second layer sees. Every activation map is drawn at its
# own contrast; the pooled maps share one, so that their strengths compare.
plot_feature_maps(layer1, X_train[0], max_maps=16)

# %%
# Layer 2
# -------
# The second layer sees 2x2 blocks of the pooled maps, i.e. vectors of
# ``2 * 2 * 32 = 128`` first-layer activations. They are whitened (the
# activations of neighbouring positions and of similar filters are strongly
# correlated, just as neighbouring pixels are) and encoded by a sparse
# autoencoder with 64 hidden units. On the 3x3 maps this gives 2x2 maps per
# unit, pooled here over all of them: one value per unit and image.
#
# Each first-layer pooled cell covers 4x4 pixels (a 3x3 filter moved over a
# 2x2 pooling region), so one second-layer window covers 6x6 of the 8x8
# pixels.
start = time.perf_counter()
layer2 = ConvPoolTransformer(
    make_pipeline(ZCAWhitening(epsilon=0.1), sparse_autoencoder(64)),
    patch_size=2,
    pool_size=2,
    n_patches=5000,
    random_state=0,
)
features2_train = layer2.fit_transform(maps_train)
features2_test = layer2.transform(maps_test)
print(f"layer 2: input {layer2.image_shape_}, output {layer2.output_shape_} "
      f"({time.perf_counter() - start:.1f} s)")

# %%
# What the second-layer units respond to
# --------------------------------------
# A second-layer filter lives in the space of first-layer activations and has
# no picture of its own. Instead, for 24 units we average the 6x6 pixel
# windows of the 30 training images on which the unit fires most (the
# "receptive field" of the unit at that position). The units respond to
# curves, loops, corners and junctions: arrangements of several first-layer
# strokes, larger than any first-layer filter.
unpooled = layer2.convolve(maps_train)  # (n, 2, 2, 64) before pooling
n_units, n_top, side = 24, 30, 6
preferred = np.empty((n_units, side, side))
for unit in range(n_units):
    responses = unpooled[..., unit].ravel()
    top = np.argsort(responses)[::-1][:n_top]
    img, i, j = np.unravel_index(top, unpooled.shape[:3])
    windows = [X_train[a, 2 * b : 2 * b + side, 2 * c : 2 * c + side]
               for a, b, c in zip(img, i, j)]
    preferred[unit] = np.mean(windows, axis=0)
fig, ax = plt.subplots(figsize=(6, 4.5))
plot_filters(preferred, n_cols=6, ax=ax,
             title="layer 2: mean of the 30 windows (6x6 pixels)\n"
                   "that activate each of 24 units most")
fig.tight_layout()

# %%
# What the second layer adds
# --------------------------
# Logistic regressions on standardized features, trained on the training half
# and scored on the held-out half:
#
# * layer 1 with its spatial layout: the 3x3 pooled maps, 288 features;
# * layer 1 pooled over the whole image (a bag of strokes, 32 features);
# * layer 2 pooled over the whole image (64 features);
# * both pooled over the whole image (96 features).
#
# Once positions are pooled away, the first-layer features only say *which*
# strokes occur, and the accuracy drops. The second-layer features encode how
# strokes are combined over a larger region, which is much more informative
# about the digit even without positions, and they complement the first
# layer. With their spatial layout kept, though, the first-layer features
# already classify these tiny 8x8 digits almost perfectly, so a second layer
# pays off on larger images rather than here.


def held_out_accuracy(train_features, test_features):
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(train_features, y_train)
    return model.score(test_features, y_test)


def flat(maps):
    return maps.reshape(len(maps), -1)


global1_train, global1_test = maps_train.mean(axis=(1, 2)), maps_test.mean(axis=(1, 2))
scores = {
    "layer 1, 3x3 maps (288)": held_out_accuracy(flat(maps_train), flat(maps_test)),
    "layer 1, global pool (32)": held_out_accuracy(global1_train, global1_test),
    "layer 2, global pool (64)": held_out_accuracy(features2_train, features2_test),
    "layers 1+2, global pool (96)": held_out_accuracy(
        np.hstack([global1_train, features2_train]),
        np.hstack([global1_test, features2_test]),
    ),
}
for name, score in scores.items():
    print(f"{name:>30}: {score:.3f}")

fig, ax = plt.subplots(figsize=(7, 3.2))
bars = ax.barh(list(scores), list(scores.values()),
               color=["tab:gray", "tab:blue", "tab:orange", "tab:green"])
ax.bar_label(bars, fmt="%.3f", padding=3)
ax.set_xlim(0.85, 1.02)
ax.set_xticks(np.arange(0.86, 1.001, 0.02))
ax.invert_yaxis()
ax.set_xlabel("held-out accuracy (899 test digits)")
ax.set_title("Logistic regression on layer 1 and layer 2 features")
fig.tight_layout()
plt.show()
