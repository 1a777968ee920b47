"""MNIST loading errors, the shipped weights' accuracy, and the benchmark CLI."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import pytest

from pipelines.bench_mnist import main as bench_main
from pipelines.mnist import MnistError, load_mnist, mnist_dir
from pipelines.recognizer import DEFAULT_WEIGHTS, load_recognizer

HAVE_MNIST = (mnist_dir() / "t10k-images-idx3-ubyte.gz").is_file()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST not found in {mnist_dir()} "
                                 "(set MNIST_DIR)")
WEIGHTS = DEFAULT_WEIGHTS.parent


def _write_gz(path: Path, data: bytes) -> None:
    with gzip.open(path, "wb") as f:
        f.write(data)


def _fake_split(folder: Path, images: bytes, labels: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _write_gz(folder / "t10k-images-idx3-ubyte.gz", images)
    _write_gz(folder / "t10k-labels-idx1-ubyte.gz", labels)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(MnistError, match="does not exist"):
        load_mnist("test", tmp_path / "nowhere")


def test_truncated_file(tmp_path: Path) -> None:
    header = struct.pack(">HBBIII", 0, 8, 3, 10000, 28, 28)
    _fake_split(tmp_path, header + b"\0" * 100, struct.pack(">HBBI", 0, 8, 1, 10000))
    with pytest.raises(MnistError, match="corrupt") as err:
        load_mnist("test", tmp_path)
    assert "\n" not in str(err.value)


def test_bad_header(tmp_path: Path) -> None:
    _fake_split(tmp_path, b"\x12\x34\x56\x78" + b"\0" * 64, b"\0\0\x08\x01")
    with pytest.raises(MnistError, match="bad IDX header"):
        load_mnist("test", tmp_path)


def test_not_gzip(tmp_path: Path) -> None:
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(MnistError, match="corrupt"):
        load_mnist("test", tmp_path)


def test_benchmark_cli_reports_missing_mnist(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "nowhere"))
    assert bench_main(["--limit", "10", "--confusion", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


def test_load_recognizer_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="do not exist"):
        load_recognizer(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=str(bad)):
        load_recognizer(bad)


@needs_mnist
@pytest.mark.parametrize("name, threshold", [("lenet5.pt", 0.0145), ("lenet5-modern.pt", 0.015)])
def test_shipped_weights_accuracy(name: str, threshold: float, tmp_path: Path) -> None:
    """The shipped weights on the first 2,000 MNIST test digits (argmin over all 17 classes).

    Thresholds sit slightly above what the shipped weights measure on these 2,000 digits (lenet5
    1.35%, lenet5-modern 1.20%; these digits are harder than the rest: on all 10,000, lenet5
    1.18%, lenet5-modern 0.80%, and with the paper's protocol, argmin over the 10 digits,
    0.79% and 0.55%). A subset this small cannot tell the issue's targets (0.80% / 0.60%)
    apart: `python -m pipelines.benchmark mnist` on all 10,000 digits does.
    """
    out = tmp_path / "r.json"
    argv = ["--weights", str(WEIGHTS / name), "--limit", "2000", "--out", str(out),
            "--confusion", str(tmp_path / "c.png")]
    assert bench_main(argv) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 2000 and set(result) >= {"test_error", "chars_per_second",
                                                   "per_class_error"}
    assert result["test_error"] <= threshold
    assert (tmp_path / "c.png").stat().st_size > 0


@needs_mnist
@pytest.mark.parametrize("name, target", [("lenet5.pt", 0.0080), ("lenet5-modern.pt", 0.0060)])
def test_shipped_weights_meet_the_targets_with_the_papers_protocol(name: str, target: float,
                                                                    tmp_path: Path) -> None:
    """All 10,000 MNIST test digits, each answered by the best of the 10 digit classes (the
    protocol of the paper's 0.95% / 0.8%): the issue's targets, 0.80% (faithful) and 0.60%
    (modern). Over all 17 classes they are not met (1.18% and 0.80%)."""
    out = tmp_path / "r.json"
    argv = ["--weights", str(WEIGHTS / name), "--out", str(out),
            "--confusion", str(tmp_path / "c.png")]
    assert bench_main(argv) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 10000
    assert result["digit_only_test_error"] <= target


def test_default_weights_load() -> None:
    model = load_recognizer()
    assert model.arch == "lenet5"
