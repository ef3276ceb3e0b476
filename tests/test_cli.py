import gzip
import struct

import matplotlib
import numpy as np
import pytest

from skaecnn._cli import main

matplotlib.use("Agg")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = ["--quiet", "-k", "6", "--n-patches", "300", "--max-iter", "20"]
PICTURES = ["filters.png", "feature_maps.png", "reconstructions.png"]


def test_digits_job_prints_table_and_writes_pictures(tmp_path, capsys):
    assert main(FAST + ["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Held-out accuracy on digits (899 test images)" in out
    assert "raw pixels + logistic regression" in out
    assert "ConvPool (k=6, m=3, pool=3)" in out
    accuracies = [float(line.split()[-1]) for line in out.splitlines() if "logistic" in line]
    assert len(accuracies) == 2 and all(0.5 < a <= 1 for a in accuracies)
    for name in PICTURES:
        assert (tmp_path / name).stat().st_size > 1000


def test_verbose_job_reports_progress_once_per_transform(tmp_path, capsys):
    assert main(FAST[1:] + ["--out", str(tmp_path)]) == 0
    progress = [line for line in capsys.readouterr().out.splitlines() if " images/s" in line]
    # Training and test features only: none for the single images of the pictures.
    assert [line.split()[1] for line in progress] == ["898/898", "899/899"]


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_files_split_the_test_set_when_alone(tmp_path, capsys):
    rng = np.random.RandomState(0)
    labels = np.repeat(np.arange(2), 20)
    images = np.zeros((40, 12, 12), dtype=np.uint8)
    images[labels == 0, 2:10, 5:7] = 255  # vertical bars
    images[labels == 1, 5:7, 2:10] = 255  # horizontal bars
    # Noise added in int and clipped: added to 255 in uint8 it would wrap around.
    noise = rng.randint(0, 30, size=images.shape)
    images = np.minimum(images + noise, 255).astype(np.uint8)
    perm = rng.permutation(40)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[perm])
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[perm])
    assert main(FAST + ["--mnist", str(tmp_path), "-p", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Held-out accuracy on MNIST (20 test images)" in out


def test_unlabelled_folder_only_learns_filters(tmp_path, capsys):
    from PIL import Image

    rng = np.random.RandomState(0)
    for i in range(3):
        Image.fromarray(rng.randint(0, 256, size=(20, 16, 3), dtype=np.uint8)).save(
            tmp_path / f"{i}.png"
        )
    assert main(FAST + ["--images", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "no accuracy table" in out
    assert all((tmp_path / "out" / name).exists() for name in PICTURES)


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ["--images", "--mnist", "--n-components", "--patch-size", "--pool-size",
                   "--pooling", "--seed", "--out", "--max-iter"]:
        assert option in out
