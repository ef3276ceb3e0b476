"""Sharing fitted models with skops: only skaecnn's own types to trust, same output."""

import doctest
import os
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

from skaecnn import (
    ConvNetClassifier,
    ConvPoolStack,
    ConvPoolTransformer,
    KMeansTriangleFeatures,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)

sio = pytest.importorskip("skops.io")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

USER_GUIDE = Path(__file__).parents[1] / "docs" / "user_guide.rst"


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return data.images[:200] / 16.0, data.target[:200]


def sae(k=6, **params):
    return SparseAutoencoderFeatures(n_components=k, max_iter=10, random_state=0, **params)


def conv(encoder, **params):
    return ConvPoolTransformer(encoder, patch_size=3, pool_size=2, n_patches=300,
                               random_state=0, **params)


# (name, estimator, method the round trip must reproduce, input: "patches" or "images")
CASES = [
    ("sae-lbfgs", lambda: sae(), "transform", "patches"),
    ("sae-adam", lambda: sae(solver="adam"), "transform", "patches"),
    ("zca", ZCAWhitening, "transform", "patches"),
    ("normalizer", PatchNormalizer, "transform", "patches"),
    ("kmeans", lambda: KMeansTriangleFeatures(n_components=5, random_state=0), "transform",
     "patches"),
    ("conv-default-encoder", lambda: ConvPoolTransformer(n_patches=300, random_state=0),
     "transform", "images"),
    ("conv-kmeans", lambda: conv(make_pipeline(
        PatchNormalizer(0.01), ZCAWhitening(), KMeansTriangleFeatures(5, random_state=0))),
     "transform", "images"),
    ("conv-generic", lambda: conv(make_pipeline(Normalizer(), sae())), "transform", "images"),
    ("conv-maps", lambda: conv(sae(), flatten=False), "transform", "images"),
    ("pipeline", lambda: make_pipeline(
        conv(sae(), flatten=False), ConvPoolTransformer(sae(4), patch_size=2, pool_size=1,
                                                        n_patches=300, random_state=0),
        StandardScaler(), LogisticRegression(max_iter=200)),
     "predict_proba", "images"),
    ("stack", lambda: ConvPoolStack([conv(sae()), ConvPoolTransformer(
        n_patches=300, patch_size=2, pool_size=1)], random_state=0), "transform", "images"),
    ("convnet", lambda: ConvNetClassifier([conv(sae())], max_iter=2, random_state=0),
     "predict_proba", "images"),
]


@pytest.mark.parametrize("make, method, data", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_round_trip_trusting_only_skaecnn_types(digits, make, method, data):
    images, y = digits
    X = images[:, :3, :3].reshape(len(images), -1) if data == "patches" else images
    model = make().fit(X, y)
    dumped = sio.dumps(model)
    untrusted = sio.get_untrusted_types(data=dumped)
    assert untrusted and all(name.startswith("skaecnn.") for name in untrusted), untrusted
    loaded = sio.loads(dumped, trusted=untrusted)
    np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(model, method)(X))
    if hasattr(model, "partial_fit"):
        # Optimizer state and random state come back too: training goes on the same.
        loaded.partial_fit(X, y)
        model.partial_fit(X, y)
        np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(model, method)(X))


def test_loading_refuses_what_is_not_trusted(digits):
    images, _ = digits
    dumped = sio.dumps(conv(sae()).fit(images))
    with pytest.raises(Exception, match="(?i)untrusted"):
        sio.loads(dumped, trusted=None)


def test_user_guide_section_runs(tmp_path, monkeypatch):
    text = USER_GUIDE.read_text()
    section = re.search(r"\nSaving and sharing a model\n-+\n(.*?)\n\S[^\n]*\n-+\n", text, re.S)
    assert section, "the user guide has no section 'Saving and sharing a model'"
    monkeypatch.chdir(tmp_path)
    test = doctest.DocTestParser().get_doctest(
        section.group(1), {}, "user_guide.rst: Saving and sharing a model", str(USER_GUIDE), 0
    )
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=lambda message: print(message, end=""))
    assert test.examples and runner.failures == 0
    assert os.path.exists(tmp_path / "digits-model.skops")
