"""Kymatio's 2-D scattering transform as a transformer for ``accuracy.py``.

kymatio 0.3.0 needs scipy < 1.15, older than skaecnn's, so it runs in a Python
of its own: ``ScatteringFeatures(python=...)`` starts that interpreter on this
file, one process per job on a share of the images, and reads the features
back from ``.npy`` files. Its environment::

    python -m venv ../venv-kymatio
    ../venv-kymatio/bin/pip install kymatio==0.3.0 "scipy<1.15" "numpy<2"

The times this transformer takes include starting those processes (about a
second), which is small beside the transform itself.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

_BATCH = 256


class ScatteringFeatures(TransformerMixin, BaseEstimator):
    """``Scattering2D(J, shape, L)`` coefficients of gray images, flattened.

    Nothing is learned: ``fit`` only checks that ``python`` runs kymatio.
    """

    def __init__(self, python, image_shape, J=3, L=8, n_jobs=1):
        self.python = python
        self.image_shape = image_shape
        self.J = J
        self.L = L
        self.n_jobs = n_jobs

    def fit(self, X, y=None):
        subprocess.run([self.python, "-c", "import kymatio"], check=True)
        return self

    def transform(self, X):
        X = np.asarray(X, dtype=np.float32).reshape((len(X),) + tuple(self.image_shape))
        if X.ndim != 3:
            raise ValueError(f"ScatteringFeatures takes gray images; got shape {X.shape[1:]}")
        parts = np.array_split(np.arange(len(X)), max(1, self.n_jobs))
        # One thread per process: the processes share the cores.
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1")
        with tempfile.TemporaryDirectory() as tmp:
            jobs = []
            for i, rows in enumerate(parts):
                src, dst = os.path.join(tmp, f"in{i}.npy"), os.path.join(tmp, f"out{i}.npy")
                np.save(src, X[rows])
                jobs.append((dst, subprocess.Popen(
                    [self.python, __file__, src, dst, str(self.J), str(self.L)], env=env,
                )))
            for _, job in jobs:
                if job.wait() != 0:
                    raise RuntimeError(f"kymatio worker {job.args} exited with {job.returncode}")
            return np.concatenate([np.load(dst) for dst, _ in jobs])


def _worker(src, dst, J, L):
    from kymatio.numpy import Scattering2D

    X = np.load(src)
    scattering = Scattering2D(J=J, shape=X.shape[1:], L=L)
    batches = (X[s : s + _BATCH] for s in range(0, len(X), _BATCH))
    out = [scattering(batch).reshape(len(batch), -1) for batch in batches]
    np.save(dst, np.concatenate(out).astype(np.float32))


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
