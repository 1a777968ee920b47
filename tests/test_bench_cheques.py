import json

import pytest

from pipelines.bench_cheques import BITONAL, main, synthetic_cases
from pipelines.cheques import is_bitonal, is_rough
from pipelines.mnist import mnist_dir

needs_mnist = pytest.mark.skipif(not (mnist_dir() / "t10k-images-idx3-ubyte.gz").is_file(),
                                 reason="MNIST_DIR holds no MNIST")


@needs_mnist
def test_rough_cases_change_only_the_drawn_colour_scans():
    plain = synthetic_cases(10, 7, True)
    rough = synthetic_cases(10, 7, True, rough=0.5)
    assert [c.text for c in plain] == [c.text for c in rough]
    changed = [p.png != r.png for p, r in zip(plain, rough)]
    assert changed == [not is_bitonal(BITONAL, 7, i) and is_rough(0.5, 7, i) for i in range(10)]
    assert any(changed) and not all(changed)


@needs_mnist
def test_mottled_cases_change_only_the_colour_scans_drawn_and_darken_none():
    """A mottled background shades a drawn scan (never lighter than it was); bitonal scans and
    the undrawn ones are the same bytes as without."""
    import cv2
    import numpy as np

    plain = synthetic_cases(10, 7, False)
    mottled = synthetic_cases(10, 7, False, mottled=0.5)
    changed = [p.png != m.png for p, m in zip(plain, mottled)]
    assert any(changed) and not all(changed)
    assert not any(c and is_bitonal(BITONAL, 7, i) for i, c in enumerate(changed))
    for p, m, c in zip(plain, mottled, changed):
        if c:
            before, after = (cv2.imdecode(np.frombuffer(x.png, np.uint8), 0) for x in (p, m))
            assert (after <= before).all() and (before.astype(int) - after).mean() > 5


@pytest.mark.parametrize("option", ["--rough-fraction", "--mottled-fraction", "--zoom-below"])
def test_a_fraction_outside_0_1_is_refused(option, capsys):
    assert main(["--n", "2", option, "1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert option in err and "\n" not in err


@needs_mnist
def test_the_benchmark_writes_the_issues_json_keys(tmp_path):
    out = tmp_path / "new" / "m.json"  # folders that do not exist yet are made
    argv = ["--n", "3", "--field", "--workers", "1", "--rough-fraction", "0.5",
            "--out", str(out), "--curve", str(tmp_path / "pictures" / "curve.png")]
    assert main(argv) == 0
    metrics = json.loads(out.read_text())
    assert set(metrics) == {"n", "amount_accuracy", "char_error_rate", "field_accuracy",
                            "segmentation_accuracy", "error_at_reject", "cheques_per_second"}
    assert metrics["n"] == 3 and set(metrics["error_at_reject"]) == {"0", "0.05", "0.1", "0.2"}
    assert (tmp_path / "pictures" / "curve.png").stat().st_size > 0


def test_outputs_that_cannot_be_written_are_refused_before_the_run(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    assert main(["--n", "2", "--out", str(a_file / "m.json")]) == 2
    assert main(["--n", "2", "--curve", str(tmp_path)]) == 2  # a folder
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("cannot write" in line for line in err)
    assert a_file.read_text() == "keep me"
