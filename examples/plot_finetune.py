"""
=============================================================
From features to a trained network: fine-tuning on the digits
=============================================================

A :class:`~skaecnn.ConvPoolTransformer` learns its filters without labels:
they are whatever reconstructs small patches best. UFLDL's last step keeps
the network those filters define -- convolution, sigmoid, pooling, and a
softmax regression on top -- and trains *all* of it on the labels by
backpropagation. :class:`~skaecnn.ConvNetClassifier` does both: it pretrains
its layers greedily without labels, then fine-tunes the whole network.

This example compares, on the 8x8 digits split half/half, the pretrained
layer with a logistic regression on its fixed features against the same
layer fine-tuned, and shows the filters before and after. With one layer on
a few hundred images, the pretrained features are already about as good as
this network gets: expect the two accuracies within a few test digits of
each other. Fine-tuning pays with depth and augmentation on larger images
(see the user guide's section "From features to a trained network").
"""

# %%
# The pretrained layer, with a classifier on its fixed features
# ---------------------------------------------------------------
# 100 filters of 3x3 pixels (patch normalization, ZCA whitening, sparse
# autoencoder with a linear decoder), mean-pooled over 3x3 regions.
import time

import matplotlib.pyplot as plt
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skaecnn import (
    ConvNetClassifier,
    ConvPoolTransformer,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)
from skaecnn.datasets import load_digits_images
from skaecnn.plotting import plot_filters

images, target = load_digits_images(return_X_y=True)
images = images / 16.0
X_train, X_test, y_train, y_test = train_test_split(
    images, target, test_size=0.5, stratify=target, random_state=0
)
layer = ConvPoolTransformer(
    make_pipeline(
        PatchNormalizer(epsilon=10 / 255**2),
        ZCAWhitening(epsilon=0.1),
        SparseAutoencoderFeatures(
            n_components=100, decoder="linear", sparsity_target=0.035,
            sparsity_weight=5.0, alpha=3e-3, tol=1e-3, random_state=0,
        ),
    ),
    patch_size=3, pool_size=3, random_state=0,
)
start = time.perf_counter()
layer.fit(X_train)
fixed = make_pipeline(layer, StandardScaler(), LogisticRegression(max_iter=1000))
fixed.fit(X_train, y_train)
print(f"pretrained layer + logistic regression: {fixed.score(X_test, y_test):.2%} "
      f"({time.perf_counter() - start:.1f} s)")

# %%
# Fine-tuning the same layer
# --------------------------
# ``pretrain="keep"`` starts from the layer as it was fitted (it could have
# been pretrained on many more unlabelled images); the softmax on top is
# trained with it, end to end. ``layers_`` holds the fine-tuned layer, whose
# ``transform`` and filters are the trained ones; the layer passed in is left
# as it was. Training stops once its loss has not improved by ``tol`` (1e-4)
# for 5 epochs, after about 35 epochs here.
start = time.perf_counter()
clf = ConvNetClassifier([layer], pretrain="keep", max_iter=50, random_state=0)
clf.fit(X_train, y_train)
print(f"fine-tuned network: {clf.score(X_test, y_test):.2%} "
      f"({time.perf_counter() - start:.1f} s, {clf.n_iter_} epochs)")

# %%
# The filters before and after
# ----------------------------
# Each tile is one filter in image space (preprocessing folded in). They
# change little: fine-tuning starts from filters that already describe the
# strokes, and nudges them towards separating the classes rather than
# reconstructing patches.
fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
plot_filters(layer, ax=axes[0], title="pretrained (unsupervised)")
plot_filters(clf.layers_[0], ax=axes[1], title="fine-tuned (supervised)")
plt.show()

# %%
# The loss during fine-tuning
# ---------------------------
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(range(1, len(clf.loss_curve_) + 1), clf.loss_curve_)
ax.set_xlabel("epoch")
ax.set_ylabel("mean cross-entropy + weight decay")
plt.show()
