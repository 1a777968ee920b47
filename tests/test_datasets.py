"""The CSV / labels.jsonl loader reports every bad row with its file, line and reason."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.datasets import BadRowsError, amount_problem, load_examples


def _png(path) -> None:
    import cv2

    cv2.imwrite(str(path), np.full((20, 40), 255, np.uint8))


def test_amount_problem_names_the_reason() -> None:
    assert amount_problem("12.50", "us") is None
    assert "cents need two digits" in amount_problem("12.5", "us")
    assert "cannot write" in amount_problem("12.50", "digits")
    assert "unknown grammar" in amount_problem("1", "klingon")


def test_csv_bad_rows_are_all_reported(tmp_path) -> None:
    _png(tmp_path / "a.png")
    (tmp_path / "scans.csv").write_text(
        "path,amount\n"
        "a.png,12.50\n"          # good
        "missing.png,3.00\n"     # line 3: missing file
        "a.png,1,234.00\n"       # line 4: 3 columns -> grammar '234.00' unknown
        "a.png,12.5\n"           # line 5: not normalised
        "a.png,7.25,digits\n"    # line 6: grammar cannot write it
        "a.png,99,eu\n")         # good
    with pytest.raises(BadRowsError) as err:
        load_examples(tmp_path / "scans.csv")
    lines = [(r.line, r.reason) for r in err.value.rows]
    assert [n for n, _ in lines] == [3, 4, 5, 6]
    assert "missing.png is missing" in lines[0][1]
    assert "unknown grammar" in lines[1][1]
    assert "two digits" in lines[2][1]
    assert "'digits' grammar cannot write" in lines[3][1]
    assert "scans.csv:3" in str(err.value) and "--skip-bad" in str(err.value)


def test_csv_skip_bad_prints_every_skipped_row(tmp_path) -> None:
    _png(tmp_path / "a.png")
    (tmp_path / "s.csv").write_text("a.png,12.50\nnope.png,1\na.png,x\n")
    logged: list[str] = []
    examples = load_examples(tmp_path / "s.csv", skip_bad=True, log=logged.append)
    assert [(e.amount, e.grammar) for e in examples] == [("12.50", "us")]
    assert len(logged) == 2 and "s.csv:2" in logged[0] and "s.csv:3" in logged[1]


def test_labels_jsonl_takes_each_rows_grammar(tmp_path) -> None:
    _png(tmp_path / "00000.png")
    rows = [{"file": "00000.png", "amount": "12.50", "grammar": "eu"},
            {"file": "00001.png", "amount": "1", "grammar": "us"},
            {"file": "00000.png"}]
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BadRowsError) as err:
        load_examples(tmp_path)
    assert [r.line for r in err.value.rows] == [2, 3]
    good = load_examples(tmp_path, skip_bad=True, log=lambda m: None)
    assert good[0].grammar == "eu" and good[0].where.endswith("labels.jsonl:1")


def test_not_a_data_set(tmp_path) -> None:
    with pytest.raises(ValueError, match="neither a folder"):
        load_examples(tmp_path / "nothing")


def test_training_images_are_read_as_the_reader_reads_them(tmp_path) -> None:
    """Transparent pixels stored black are paper to the reader (`images.load_gray`), so they
    must be paper in training too; an unreadable file names its row."""
    from PIL import Image

    from pipelines.images import load_gray

    rgba = np.zeros((30, 60, 4), np.uint8)
    rgba[10:20, 20:30] = (0, 0, 0, 255)  # ink; the rest transparent black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not a png")
    (tmp_path / "s.csv").write_text("a.png,12.50\nb.png,3.00\n")
    good, bad = load_examples(tmp_path / "s.csv")
    image = good.load()
    assert np.array_equal(image, load_gray(tmp_path / "a.png"))
    assert image[0, 0] == 255 and image[15, 25] == 0
    with pytest.raises(ValueError, match=r"s\.csv:2: cannot read image"):
        bad.load()
