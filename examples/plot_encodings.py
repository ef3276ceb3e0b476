"""
====================================================================
One digit's maps under the sigmoid, the soft threshold and the split
====================================================================

:class:`~skaecnn.ConvPoolTransformer`'s ``activation`` chooses how the
responses ``z`` of the filters to every window become the maps that are
pooled (see "Encoding and pooling" in the user guide):

* the encoder's own activation, here the sigmoid of a sparse autoencoder:
  every position gets a value between 0 and 1;
* ``"soft"``, Coates & Ng's soft threshold ``max(0, z - alpha)``: zero
  wherever the filter matches less than ``alpha``;
* ``"split"``, the polarity split ``[max(0, z - alpha), max(0, -z - alpha)]``:
  a second map per filter for its opposite-sign match.

Each encoding is paired with the dictionary it measured best with: the
sigmoid with the sparse autoencoder's units, the thresholds with k-means
centroids (as in the documented recipe). The maps of one 8x8 digit are drawn
for the first 8 filters, every row of maps on one gray scale from 0 (black)
to the row's largest value, so that dense and sparse maps can be compared.
"""

# %%
# Three encodings of one digit
# ----------------------------
# 3x3 patches of the 8x8 digits give 6x6 maps. Both dictionaries are learned
# from normalized, ZCA-whitened patches.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.pipeline import make_pipeline

from skaecnn import (
    ConvPoolTransformer,
    KMeansTriangleFeatures,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)
from skaecnn.datasets import load_digits_images

images = load_digits_images()["images"]
k = 8
# Coates et al.'s epsilon = 10 for 8-bit pixels, for pixels in [0, 1].
epsilon = 10 / 255**2


def conv(last_step, **encoding):
    encoder = make_pipeline(
        PatchNormalizer(epsilon=epsilon), ZCAWhitening(epsilon=0.1), last_step
    )
    return ConvPoolTransformer(
        encoder, patch_size=3, n_patches=5000, pool_size=3, random_state=0,
        **encoding,
    ).fit(images)


# The autoencoder stops once its loss improves by less than ``tol=1e-3``.
autoencoder = SparseAutoencoderFeatures(
    n_components=k, decoder="linear", sparsity_target=0.035,
    sparsity_weight=5.0, alpha=3e-3, tol=1e-3, random_state=0,
)
centroids = KMeansTriangleFeatures(n_components=k, random_state=0)
image = images[0]
rows = {
    "sparse autoencoder, sigmoid": conv(autoencoder).convolve(image[None])[0],
    "k-means, soft threshold": conv(
        centroids, activation="soft", alpha=1.0
    ).convolve(image[None])[0],
}
split = conv(centroids, activation="split", alpha=1.0).convolve(image[None])[0]
rows["k-means, split: max(0, z - alpha)"] = split[..., :k]
rows["k-means, split: max(0, -z - alpha)"] = split[..., k:]

# %%
# How dense each encoding is: the share of zero positions and the mean value
# of the maps (all ``k`` of them, or all ``2k`` for the split).
for name, maps in rows.items():
    zeros = np.mean(maps == 0)
    print(f"{name:>36}: {zeros:4.0%} zeros, mean {maps.mean():.3f}")

# %%
# The maps
# --------
# The sigmoid maps have no zero: every position carries a small value, a
# weak match differs little from none, and mean pooling adds these values up.
# The soft threshold keeps only the positions where a filter really matches
# (over 80% of the positions are zero). The split's first half is that soft
# threshold; its second half holds the opposite-sign matches, which the soft
# threshold drops and mean pooling of ``z`` itself would cancel.
fig, axes = plt.subplots(len(rows), k + 1, figsize=(10, 5.5))
for (name, maps), row in zip(rows.items(), axes):
    row[0].imshow(image, cmap="gray", interpolation="nearest")
    row[0].set_ylabel(name.replace(", ", ",\n", 1), rotation=0, ha="right",
                      va="center", fontsize=9)
    for j, ax in enumerate(row[1:]):
        ax.imshow(maps[..., j], cmap="gray", vmin=0, vmax=maps.max(),
                  interpolation="nearest")
    for ax in row:
        ax.set_xticks([])
        ax.set_yticks([])
for j, ax in enumerate(axes[0, 1:]):
    ax.set_title(f"filter {j}", fontsize=9)
axes[0, 0].set_title("image", fontsize=9)
fig.tight_layout()
plt.show()
