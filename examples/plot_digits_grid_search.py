"""
=====================================================================
Choosing the number of filters, the patch size and the pooling region
=====================================================================

A :class:`~skaecnn.ConvPoolTransformer` has three numbers that shape the
features it hands to a classifier:

* ``k``, the number of filters, i.e. the number of hidden units of the sparse
  autoencoder (``n_components``);
* ``m``, the side of the square patches the autoencoder learns on, which is
  also the side of the filters (``patch_size``);
* ``p``, the side of the pooling regions (``pool_size``).

An image of ``n x n`` pixels gives ``k`` maps of ``(n-m+1) x (n-m+1)``
activations; pooling shrinks each to ``((n-m+1) // p) x ((n-m+1) // p)``
values, and the maps are unrolled into one vector of
``k * ((n-m+1) // p)**2`` features per image.

Because every step is a scikit-learn estimator, the whole chain -- per-patch
normalization, ZCA whitening, sparse autoencoder, convolution and pooling,
feature scaling and logistic regression -- is one
:class:`~sklearn.pipeline.Pipeline`, and
:class:`~sklearn.model_selection.GridSearchCV` picks the three numbers by
cross-validation on the training images. The held-out test images are used
only at the end, to compare the chosen model with a logistic regression on
raw pixels.

The data are the 1,797 8x8 digits bundled with scikit-learn, scaled to [0, 1]
by :func:`skaecnn.datasets.load_digits_images`.
"""

# %%
# Data
# ----
# Half of the images are kept aside as a test set.
import time

import matplotlib.pyplot as plt
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from skaecnn import (
    ConvPoolTransformer,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)
from skaecnn.datasets import load_digits_images

images, target = load_digits_images(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    images, target, test_size=0.5, stratify=target, random_state=0
)
print(f"{len(X_train)} training and {len(X_test)} test images of {images.shape[1:]}")

# %%
# The pipeline
# ------------
# The patch encoder is per-patch normalization, ZCA whitening and a sparse
# autoencoder with a linear decoder (UFLDL's "linear decoder", since whitened
# patches are not confined to [0, 1]).
#
# :class:`~skaecnn.PatchNormalizer` divides every patch by
# ``sqrt(var + epsilon)``; Coates et al. use ``epsilon = 10`` for pixels in
# [0, 255], which for pixels in [0, 1] is ``10 / 255**2``, about 1.5e-4.
#
# To keep the search short, the autoencoder stops once its loss improves by
# less than ``tol=1e-3`` for 10 iterations (after at most about 190 here): the
# features are already useful then.

encoder = make_pipeline(
    PatchNormalizer(epsilon=10 / 255**2),
    ZCAWhitening(epsilon=0.1),
    SparseAutoencoderFeatures(
        n_components=32,
        decoder="linear",
        sparsity_target=0.035,
        sparsity_weight=5.0,
        alpha=3e-3,
        tol=1e-3,
        random_state=0,
    ),
)
model = Pipeline(
    [
        ("features", ConvPoolTransformer(encoder, n_patches=5000, random_state=0)),
        ("scale", StandardScaler()),
        ("classifier", LogisticRegression(max_iter=1000)),
    ]
)

# %%
# The grid
# --------
# The parameters of the nested steps are reached with scikit-learn's ``__``
# syntax: ``features__encoder__sparseautoencoderfeatures__n_components`` is
# ``n_components`` of the step named ``sparseautoencoderfeatures`` (the name
# :func:`~sklearn.pipeline.make_pipeline` gave it) of the ``encoder`` of the
# step ``features``.
param_grid = {
    "features__encoder__sparseautoencoderfeatures__n_components": [16, 32, 64],
    "features__patch_size": [3, 5],
    "features__pool_size": [2, 3],
}
search = GridSearchCV(model, param_grid, cv=3)
start = time.perf_counter()
search.fit(X_train, y_train)
print(f"grid search of {len(search.cv_results_['params'])} settings x 3 folds "
      f"in {time.perf_counter() - start:.1f} s")
print("best setting:", search.best_params_)
print(f"best cross-validated accuracy: {search.best_score_:.3f}")

# %%
# Cross-validated accuracy of every setting
# -----------------------------------------
# One panel per pooling size, one line per patch size, the number of filters
# along the horizontal axis. The error bars are the standard deviation over the
# three folds.
results = search.cv_results_
ks = param_grid["features__encoder__sparseautoencoderfeatures__n_components"]
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for ax, pool in zip(axes, param_grid["features__pool_size"]):
    for m in param_grid["features__patch_size"]:
        rows = [
            i
            for i, params in enumerate(results["params"])
            if params["features__patch_size"] == m and params["features__pool_size"] == pool
        ]
        rows.sort(key=lambda i: results["params"][i][
            "features__encoder__sparseautoencoderfeatures__n_components"])
        side = (8 - m + 1) // pool
        ax.errorbar(
            ks,
            results["mean_test_score"][rows],
            yerr=results["std_test_score"][rows],
            marker="o",
            capsize=3,
            label=f"m = {m}: maps {8 - m + 1}x{8 - m + 1}, pooled {side}x{side}",
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("number of filters k")
    ax.set_title(f"pool size p = {pool}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
axes[0].set_ylabel("mean cross-validated accuracy")
fig.suptitle("Grid search over k, m and p (3-fold CV on the training half)")
fig.tight_layout()

# %%
# Held-out accuracy against raw pixels
# ------------------------------------
# :class:`~sklearn.model_selection.GridSearchCV` has refitted the best setting
# on the whole training half. The baseline is the same scaler and logistic
# regression on the 64 raw pixels.
raw = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
raw.fit(X_train.reshape(len(X_train), -1), y_train)
scores = {
    "raw pixels\n(64 features)": raw.score(X_test.reshape(len(X_test), -1), y_test),
    "learned features\n({} features)".format(
        search.best_estimator_["features"].get_feature_names_out().size
    ): search.score(X_test, y_test),
}
for name, score in scores.items():
    print(f"{name.splitlines()[0]:>17}: held-out accuracy {score:.3f}")

fig, ax = plt.subplots(figsize=(5, 3.5))
bars = ax.bar(list(scores), list(scores.values()), color=["tab:gray", "tab:blue"])
ax.bar_label(bars, fmt="%.3f")
ax.set_ylim(0.9, 1.0)
ax.set_ylabel("held-out accuracy")
ax.set_title("Logistic regression on 899 test digits")
fig.tight_layout()
plt.show()
