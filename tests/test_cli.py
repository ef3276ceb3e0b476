import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from skaecnn._cli import main

matplotlib.use("Agg")
# The fast settings below stop the autoencoder before it converges.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = ["--quiet", "-k", "6", "--n-patches", "300", "--max-iter", "20"]
PICTURES = ["filters.png", "feature_maps.png", "reconstructions.png"]
INT_OPTIONS = ["--n-components", "--patch-size", "--pool-size", "--n-patches", "--max-iter",
               "--max-images", "--seed"]


def _accuracies(out):
    return [float(line.split()[-1]) for line in out.splitlines() if "+ logistic" in line]


@pytest.mark.filterwarnings("error")
def test_default_job_warns_nothing_and_writes_every_picture(tmp_path, capsys):
    # The job as the README runs it, with warnings as errors.
    assert main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "digits: 898 training and 899 test images of 8 x 8 pixels"
    # One line per stage, no in-place updates outside a terminal, no solver chatter.
    stages = [line for line in lines if " ... " in line]
    assert [line.split(" ... ")[0].split()[0] for line in stages] == [
        "learning", "features", "logistic", "learning", "drawing"
    ]
    # Short enough not to wrap on an 80-column terminal, where \r could not
    # rewrite them.
    assert max(map(len, stages)) < 80
    assert all(line.split(" ... ")[1].split()[1].startswith("s") for line in stages)
    assert "\r" not in out and "Iteration" not in out and "images/s" not in out
    raw, learned = _accuracies(out)
    assert raw == pytest.approx(0.963, abs=0.01) and learned >= 0.98
    for name in PICTURES + ["photo_filters.png"]:
        assert (tmp_path / name).stat().st_size > 1000


def test_progress_updates_in_place_on_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(FAST[1:] + ["--max-images", "20", "--out", str(tmp_path)]) == 0
    # Not splitlines: it splits at carriage returns too.
    stages = [line for line in capsys.readouterr().out.split("\n") if " ... " in line]
    assert len(stages) == 5
    # Shown when the stage starts, completed in place when it ends.
    for line in stages:
        shown, completed = line.split("\r")
        assert shown == completed.split(" ... ")[0] + " ..."


def test_quiet_job_prints_table_and_writes_pictures(tmp_path, capsys):
    assert main(FAST + ["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("\nHeld-out accuracy on digits (899 test images)")
    assert "ConvPool (k=6, m=3, pool=3)" in out
    accuracies = _accuracies(out)
    assert len(accuracies) == 2 and all(0.5 < a <= 1 for a in accuracies)
    for name in PICTURES + ["photo_filters.png"]:
        assert (tmp_path / name).stat().st_size > 1000


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _bars(n_per_class, rng):
    """Vertical bars (class 0) and horizontal bars (class 1), 12 x 12, shuffled."""
    labels = np.repeat(np.arange(2), n_per_class)
    images = np.zeros((2 * n_per_class, 12, 12), dtype=np.uint8)
    images[labels == 0, 2:10, 5:7] = 255
    images[labels == 1, 5:7, 2:10] = 255
    # Noise added in int and clipped: added to 255 in uint8 it would wrap around.
    noise = rng.randint(0, 30, size=images.shape)
    images = np.minimum(images + noise, 255).astype(np.uint8)
    perm = rng.permutation(len(labels))
    return images[perm], labels[perm]


def test_mnist_files_split_the_test_set_when_alone(tmp_path, capsys):
    images, labels = _bars(20, np.random.RandomState(0))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    assert main(FAST + ["--mnist", str(tmp_path), "-p", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Held-out accuracy on MNIST (20 test images)" in out
    # Only the digits job learns from the photographs.
    assert not (tmp_path / "photo_filters.png").exists()


def _save_images(folder, images):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i}.png")


def test_unlabelled_folder_only_learns_filters(tmp_path, capsys):
    rng = np.random.RandomState(0)
    _save_images(tmp_path, rng.randint(0, 256, size=(3, 20, 16, 3), dtype=np.uint8))
    assert main(FAST + ["--images", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "no accuracy table" in out
    assert all((tmp_path / "out" / name).exists() for name in PICTURES)


def test_max_images_per_class_after_a_stratified_split(tmp_path, capsys):
    # Files are read class by class: a cut before the split would keep one class.
    images, labels = _bars(12, np.random.RandomState(1))
    for c in range(2):
        _save_images(tmp_path / "data" / f"class{c}", images[labels == c])
    args = FAST[1:] + ["-p", "2", "--max-images", "4", "--out", str(tmp_path)]
    assert main(args + ["--images", str(tmp_path / "data")]) == 0
    assert "8 training and 8 test images of 12 x 12 pixels" in capsys.readouterr().out
    # And for the digits: 5 of each of the 10 classes on either side.
    assert main(FAST[1:] + ["--max-images", "5", "--out", str(tmp_path)]) == 0
    assert "digits: 50 training and 50 test images" in capsys.readouterr().out


def _error_line(capsys, argv):
    """The one line a failing run writes to stderr, after checking exit code 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("option", INT_OPTIONS)
@pytest.mark.parametrize("value", ["0", "-5", "2.5", "many"])
def test_numbers_are_checked_by_argparse(option, value, capsys):
    if option == "--seed" and value == "0":
        value = str(2**32)
    err = _error_line(capsys, [option, value])
    assert f"{option}: must be an integer " in err and repr(value) in err


def test_bad_data_and_parameters_end_in_one_line(tmp_path, capsys):
    err = _error_line(capsys, ["--mnist", str(tmp_path / "missing")])
    assert "--mnist: data folder" in err and "does not exist" in err
    err = _error_line(capsys, ["--mnist", str(tmp_path)])
    assert "--mnist: expected MNIST file" in err
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\0\0\x08")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01")
    assert "--mnist:" in _error_line(capsys, ["--mnist", str(tmp_path)])
    _save_images(tmp_path / "one" / "only", np.zeros((4, 8, 8), dtype=np.uint8))
    assert "single class" in _error_line(capsys, ["--images", str(tmp_path / "one")])
    err = _error_line(capsys, ["-m", "9"])
    assert "--patch-size 9 is larger than the 8 x 8 images" in err
    err = _error_line(capsys, ["-p", "7"])
    assert "--pool-size 7 is larger than the 6 x 6 convolution maps" in err


def test_out_is_checked_before_anything_else(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    # The missing data folder would be reported too, were --out not checked first.
    err = _error_line(capsys, ["--out", str(tmp_path / "file"), "--mnist", "missing"])
    assert err.startswith("skaecnn: error: --out:") and "not a folder" in err
    assert main(FAST + ["--max-images", "3", "--out", str(tmp_path / "new" / "dir")]) == 0
    assert (tmp_path / "new" / "dir" / "filters.png").exists()


def test_entry_point_reports_errors_without_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    result = subprocess.run(
        [sys.executable, "-m", "skaecnn", "--mnist", str(tmp_path / "missing")],
        capture_output=True, text=True, env=env,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("skaecnn: error: --mnist: data folder")
    assert result.stderr.count("\n") == 1


def test_help_names_the_command_and_every_range(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: skaecnn ") and "the 'skaecnn' command" in out
    for option in ["--images", "--mnist", "--pooling", "--out", "--gray"]:
        assert option in out
    for option in INT_OPTIONS:
        # Each one's help, up to the next option, states its range.
        help_text = out.split(f"{option} N ")[1].split(" --")[0]
        assert "an integer " in help_text and "default: " in help_text
