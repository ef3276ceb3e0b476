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
on the 8x8 digits with a :class:`~skaecnn.ConvPoolStack`, looks at the image
windows that excite the second-layer units most, and measures what the
second layer adds to a logistic regression.
"""

# %%
# Two layers, fitted greedily
# ---------------------------
# A :class:`~skaecnn.ConvPoolStack` fits its layers bottom first, each on the
# pooled maps of the layer below, and concatenates the pooled features of all
# of them.
#
# Layer 1: 32 filters of 3x3 pixels (per-patch normalization, ZCA whitening,
# sparse autoencoder with a linear decoder), giving 6x6 maps, mean-pooled over
# 2x2 regions to 3x3: the second layer's input is ``(n, 3, 3, 32)``.
#
# Layer 2 sees 2x2 blocks of these maps, i.e. vectors of ``2 * 2 * 32 = 128``
# first-layer activations. Its encoder is the one ConvPoolTransformer chooses
# by default for such stacks of maps (more than 4 channels), spelled out here
# to learn 64 units that converge in seconds: every value of the window
# standardized, then whitened (the activations of neighbouring positions and
# of similar filters are strongly correlated, just as neighbouring pixels
# are), then a sparse autoencoder. On the 3x3 maps this gives 2x2 maps per
# unit, pooled here over all of them: one value per unit and image.
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skaecnn import (
    ConvPoolStack,
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
stack = ConvPoolStack(
    [
        ConvPoolTransformer(
            make_pipeline(PatchNormalizer(epsilon=10 / 255**2), ZCAWhitening(epsilon=0.1),
                          sparse_autoencoder(32)),
            patch_size=3, pool_size=2, n_patches=5000,
        ),
        ConvPoolTransformer(
            make_pipeline(StandardScaler(), ZCAWhitening(epsilon=1.0), sparse_autoencoder(64)),
            patch_size=2, pool_size=2, n_patches=5000,
        ),
    ],
    random_state=0,
)
features_train = stack.fit_transform(X_train)
features_test = stack.transform(X_test)
layer1, layer2 = stack.layers_
print(f"layer 1: output {layer1.output_shape_}; layer 2: output {layer2.output_shape_}, "
      f"encoder {[name for name, _ in layer2.encoder_.steps]}, {layer2.path_}; "
      f"features {features_train.shape} ({time.perf_counter() - start:.1f} s)")

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
# What the second-layer units respond to
# --------------------------------------
# A second-layer filter lives in the space of first-layer activations and has
# no picture of its own. Its receptive field in pixels does: one first-layer
# pooled cell covers ``p1 + m1 - 1 = 4`` pixels a side (a 3x3 filter moved
# over a 2x2 pooling region), cells start every ``p1 = 2`` pixels, so a
# window of 2x2 cells covers ``(m2 - 1) * 2 + 4 = 6`` pixels a side. For 8
# units, each row shows the 6x6 pixel windows of the 8 training images on
# which the unit fires most (its strongest position in each image), then their
# mean over the top 30. The units respond to curves, loops, corners and
# junctions -- arrangements of several first-layer strokes, larger than any
# first-layer filter -- and each unit's top windows share that arrangement.
maps_train = layer1.transform(X_train)
unpooled = layer2.convolve(maps_train)  # (n, 2, 2, 64) before pooling
step = layer1.layer_.stride[0]
side = (layer2.patch_size_ - 1) * step + layer1.pool_size_[0] + layer1.patch_size_ - 1
n_units, n_shown, n_mean = 8, 8, 30
tiles = []
for unit in range(n_units):
    responses = unpooled[..., unit].reshape(len(unpooled), -1)
    best = responses.argmax(axis=1)  # the strongest position of every image
    top = np.argsort(responses.max(axis=1))[::-1][:n_mean]
    rows, cols = np.unravel_index(best[top], unpooled.shape[1:3])
    windows = np.array([X_train[i, r * step : r * step + side, c * step : c * step + side]
                        for i, r, c in zip(top, rows, cols)])
    tiles += [*windows[:n_shown], windows.mean(axis=0)]
fig, ax = plt.subplots(figsize=(6, 5.6))
plot_filters(np.array(tiles), n_cols=n_shown + 1, scale="common", ax=ax,
             title=f"layer 2: the {side}x{side}-pixel windows that excite 8 units most\n"
                   f"(one row per unit; last column: mean of the top {n_mean})")
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
# * both pooled over the whole image (96 features);
# * the stack's output: layer 1's 3x3 maps and layer 2 (352 features).
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


n1 = int(np.prod(layer1.output_shape_))  # the stack's first columns are layer 1's
maps_test = layer1.transform(X_test)
global1_train, global1_test = maps_train.mean(axis=(1, 2)), maps_test.mean(axis=(1, 2))
features2_train, features2_test = features_train[:, n1:], features_test[:, n1:]
scores = {
    "layer 1, 3x3 maps (288)": held_out_accuracy(features_train[:, :n1], features_test[:, :n1]),
    "layer 1, global pool (32)": held_out_accuracy(global1_train, global1_test),
    "layer 2, global pool (64)": held_out_accuracy(features2_train, features2_test),
    "layers 1+2, global pool (96)": held_out_accuracy(
        np.hstack([global1_train, features2_train]),
        np.hstack([global1_test, features2_test]),
    ),
    "ConvPoolStack: 1 maps + 2 (352)": held_out_accuracy(features_train, features_test),
}
for name, score in scores.items():
    print(f"{name:>32}: {score:.3f}")

fig, ax = plt.subplots(figsize=(7, 3.6))
bars = ax.barh(list(scores), list(scores.values()),
               color=["tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:purple"])
ax.bar_label(bars, fmt="%.3f", padding=3)
ax.set_xlim(0.85, 1.02)
ax.set_xticks(np.arange(0.86, 1.001, 0.02))
ax.invert_yaxis()
ax.set_xlabel("held-out accuracy (899 test digits)")
ax.set_title("Logistic regression on layer 1 and layer 2 features")
fig.tight_layout()
plt.show()
