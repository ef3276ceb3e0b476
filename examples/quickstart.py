"""Quick start: sparse-autoencoder features of 8x8 digit images, as a Pipeline.

Learns 64 sparse-autoencoder features from scikit-learn's bundled digits (no
download) and compares a logistic regression on them with one on raw pixels.
"""

import time

from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from skaecnn import SparseAutoencoderFeatures

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16.0, y, test_size=0.5, stratify=y, random_state=0
)

for name, model in [
    ("raw pixels", make_pipeline(LogisticRegression(max_iter=2000))),
    (
        "sparse autoencoder",
        make_pipeline(
            SparseAutoencoderFeatures(
                n_components=64, sparsity_target=0.1, max_iter=400, random_state=0
            ),
            MinMaxScaler(),
            LogisticRegression(max_iter=2000),
        ),
    ),
]:
    start = time.perf_counter()
    model.fit(X_train, y_train)
    print(
        f"{name:>20}: held-out accuracy {model.score(X_test, y_test):.3f} "
        f"({time.perf_counter() - start:.1f} s)"
    )
