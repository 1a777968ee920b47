import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.amounts import normalize_amount
from pipelines.charset import RAISED_DIGITS
from pipelines.cheques import (
    generate_cheque,
    generate_cheques,
    has_raised_cents,
    has_underlined_cents,
    is_bitonal,
    is_rough,
    read_dataset,
    write_dataset,
)
from pipelines.make_cheques import main
from pipelines.mnist import load_mnist
from pipelines.scan_effects import rough_scan

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def _inside(inner, outer):
    x, y, w, h = inner
    X, Y, W, H = outer
    return X <= x and Y <= y and x + w <= X + W and y + h <= Y + H and w > 0 and h > 0


def _check_labels(text, amount, grammar, field_box, chars, shape):
    assert amount == normalize_amount(text, grammar)
    assert [c.char for c in chars] == [c for c in text if c != " "]
    assert _inside(field_box, (0, 0, shape[1], shape[0]))
    for c in chars:
        assert _inside(c.box, field_box), (c, field_box)


def test_same_seed_same_cheque():
    for kw in [dict(), dict(fields_only=True, fmt="eu"), dict(bitonal=True, fmt="mixed")]:
        a, b = generate_cheque(11, "test", **kw), generate_cheque(11, "test", **kw)
        assert a.image.tobytes() == b.image.tobytes()
        assert dataclasses.replace(a, image=None) == dataclasses.replace(b, image=None)
    assert generate_cheque(12, "test").image.shape != () and \
        generate_cheque(12, "test").text is not None


def test_labels_are_consistent():
    for s in generate_cheques(12, 5, "test", fmt="mixed"):
        assert s.image.dtype == np.uint8 and s.image.ndim == 2
        assert 1500 <= s.image.shape[1] <= 1950 and 650 <= s.image.shape[0] <= 850
        _check_labels(s.text, s.amount, s.grammar, s.field_box, s.chars, s.image.shape)
    for s in generate_cheques(8, 6, "train", fields_only=True, bitonal=0.5):
        _check_labels(s.text, s.amount, s.grammar, s.field_box, s.chars, s.image.shape)
        assert s.image.shape[0] < 300


def test_bitonal_is_black_and_white():
    img = generate_cheque(3, "test", bitonal=True).image
    assert set(np.unique(img)) <= {0, 255}


def test_splits_never_share_digits():
    test, train = load_mnist("test"), load_mnist("train")
    for split, data in (("train", train), ("test", test)):
        for s in generate_cheques(6, 2, split, digits=data):
            assert s.split == split and all(0 <= i < len(data.labels) for i in s.mnist_indices)
            digits = [c for c in s.text if c.isdigit()]
            assert [str(data.labels[i]) for i in s.mnist_indices[: len(digits)]] == digits
    with pytest.raises(ValueError, match="never mixed"):
        generate_cheque(1, "test", digits=train)


def test_digit_pools_keep_training_and_validation_cheques_apart(tmp_path):
    """--digit-pool fit writes with LeNet's training digits only, held-out with its
    validation digits only (the labels' indices are the training split's); all, the
    default, is the whole split as before."""
    train = load_mnist("train")
    common = ["--split", "train", "--n", "6", "--seed", "3", "--fields-only", "--no-progress"]
    for pool in ("fit", "held-out", "all"):
        assert main(common + ["--out", str(tmp_path / pool), "--digit-pool", pool]) == 0
    fit, held, every = (read_dataset(tmp_path / p) for p in ("fit", "held-out", "all"))
    cut = len(train.labels) - 5000
    for entries, ok in ((fit, lambda i: i < cut), (held, lambda i: i >= cut)):
        for e in entries:
            assert e.mnist_indices and all(ok(i) for i in e.mnist_indices)
            digits = [c for c in e.text if c.isdigit()]
            assert [str(train.labels[i]) for i in e.mnist_indices[: len(digits)]] == digits
    assert main(common + ["--out", str(tmp_path / "default")]) == 0
    default = read_dataset(tmp_path / "default")
    assert [e.mnist_indices for e in default] == [e.mnist_indices for e in every]
    assert all(np.array_equal(a.load(), b.load()) for a, b in zip(default, every))


def test_test_cheques_draw_their_digits_from_the_test_split():
    test = load_mnist("test")
    sample = generate_cheque(4, "test")
    # The default digits are exactly load_mnist('test') ...
    explicit = generate_cheque(4, "test", digits=test)
    assert explicit.image.tobytes() == sample.image.tobytes()
    # ... and the digit pixels are those of the listed test images: blank them and ink vanishes.
    images = test.images.copy()
    images[sample.mnist_indices] = 0
    blank = generate_cheque(4, "test", digits=dataclasses.replace(test, images=images))
    x, y, w, h = sample.field_box
    ink = sample.image[y:y + h, x:x + w].astype(float)
    no_ink = blank.image[y:y + h, x:x + w].astype(float)
    assert (ink < 128).sum() > 3 * (no_ink < 128).sum()


def test_nonsense_arguments_are_refused():
    with pytest.raises(ValueError, match="split"):
        generate_cheque(1, "validation")
    with pytest.raises(ValueError, match="seed"):
        generate_cheque(-1, "test")
    with pytest.raises(ValueError, match="format"):
        generate_cheque(1, "test", fmt="uk")
    with pytest.raises(ValueError, match="n must"):
        list(generate_cheques(-2, 0, "test"))


@pytest.mark.parametrize("argv", [
    ["--split", "test", "--n", "-3", "--seed", "1"], ["--split", "dev", "--n", "3", "--seed", "1"],
    ["--split", "test", "--n", "3", "--seed", "x"], ["--split", "test", "--n", "0", "--seed", "1"],
    ["--split", "test", "--n", "3", "--seed", "1", "--format", "fr"],
    ["--split", "test", "--n", "3", "--seed", "1", "--digit-pool", "held-out"],
    ["--split", "train", "--n", "3", "--seed", "1", "--digit-pool", "val"],
])
def test_cli_refuses_nonsense(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        raise SystemExit(main(argv + ["--out", str(tmp_path / "out")]))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error" in err


def test_cli_subprocess_and_overwrite(tmp_path):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "pipelines.make_cheques", "--split", "test", "--n", "3",
           "--seed", "9", "--out", str(out), "--fields-only", "--format", "eu"]
    env = dict(os.environ)
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    assert run.returncode == 0, run.stderr
    entries = read_dataset(out)
    assert len(entries) == 3 and all(e.grammar == "eu" and e.split == "test" for e in entries)
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "--overwrite" in again.stderr
    bad = subprocess.run(cmd[:5] + ["-4"] + cmd[6:], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert main(cmd[3:] + ["--overwrite", "--no-progress"]) == 0


def test_write_and_read_dataset(tmp_path):
    samples = list(generate_cheques(2, 1, "test", fields_only=True))
    assert write_dataset(samples, tmp_path) == 2
    entries = read_dataset(tmp_path)
    assert [e.text for e in entries] == [s.text for s in samples]
    assert entries[0].load().tobytes() == samples[0].image.tobytes()
    with pytest.raises(FileExistsError):
        write_dataset(samples, tmp_path)
    (tmp_path / "00001.png").unlink()
    with pytest.raises(ValueError, match=r"labels.jsonl:2.*00001.png"):
        read_dataset(tmp_path)
    (tmp_path / "labels.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match=r"labels.jsonl:1"):
        read_dataset(tmp_path)
    with pytest.raises(ValueError, match="missing"):
        read_dataset(tmp_path / "nowhere")


def test_samples_are_consistent(tmp_path):
    entries = read_dataset(SAMPLES)
    assert len(entries) == 12
    assert {e.grammar for e in entries} == {"us", "eu"}
    bitonal = 0
    for e in entries:
        img = e.load()
        assert e.split == "test"
        _check_labels(e.text, e.amount, e.grammar, e.field_box, e.chars, img.shape)
        bitonal += set(np.unique(img)) <= {0, 255}
    assert bitonal >= 2
    command = (SAMPLES / "README.md").read_text().split("make_cheques", 1)[1].split("```")[0]
    argv = command.replace("\\\n", " ").split()
    argv[argv.index("--out") + 1] = str(tmp_path)
    assert main(argv + ["--no-progress"]) == 0
    for line in (SAMPLES / "labels.jsonl").read_text().splitlines():
        name = json.loads(line)["file"]
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes()


def test_rough_scan_is_a_seeded_worse_scan_of_the_same_size():
    image = generate_cheque(5, "test").image
    rough = rough_scan(image, np.random.default_rng(1))
    assert rough.shape == image.shape and rough.dtype == np.uint8
    assert np.array_equal(rough, rough_scan(image, np.random.default_rng(1)))
    assert np.abs(rough.astype(int) - image).mean() > 2  # visibly worse, not a copy
    # two to four effects are drawn, so over a few seeds each one shows up
    assert len({rough_scan(image, np.random.default_rng(s)).tobytes() for s in range(6)}) == 6


def test_rough_fraction_leaves_the_other_cheques_as_they_were(tmp_path):
    common = ["--split", "train", "--n", "8", "--seed", "4", "--fields-only", "--no-progress",
              "--bitonal-fraction", "0.25"]
    assert main(common + ["--out", str(tmp_path / "plain")]) == 0
    assert main(common + ["--out", str(tmp_path / "rough"), "--rough-fraction", "0.5"]) == 0
    plain, rough = read_dataset(tmp_path / "plain"), read_dataset(tmp_path / "rough")
    assert [e.text for e in plain] == [e.text for e in rough]
    changed = [not np.array_equal(p.load(), r.load()) for p, r in zip(plain, rough)]
    expected = [not is_bitonal(0.25, 4, i) and is_rough(0.5, 4, i) for i in range(8)]
    assert changed == expected and any(expected) and not all(expected)


def test_raised_cents_fraction_leaves_the_other_cheques_as_they_were(tmp_path):
    common = ["--split", "train", "--n", "8", "--seed", "4", "--fields-only", "--no-progress"]
    assert main(common + ["--out", str(tmp_path / "plain")]) == 0
    assert main(common + ["--out", str(tmp_path / "raised"), "--raised-cents-fraction", "0.5"]) == 0
    plain, raised = read_dataset(tmp_path / "plain"), read_dataset(tmp_path / "raised")
    drawn = [has_raised_cents(0.5, 4, i) for i in range(8)]
    assert any(drawn) and not all(drawn)
    for p, r, up in zip(plain, raised, drawn):
        assert (p.text == r.text) == (not up) and p.amount.split(".")[0] == r.amount.split(".")[0]
        assert np.array_equal(p.load(), r.load()) == (not up)
        if up:
            assert any(c in RAISED_DIGITS for c in r.text) and "." in r.amount


def test_underlined_cents_fraction_underlines_only_raised_cents(tmp_path):
    """Only cheques drawn for both raised and underlined cents change (and their amounts
    stay: the underline is no character)."""
    common = ["--split", "train", "--n", "12", "--seed", "5", "--fields-only", "--no-progress",
              "--raised-cents-fraction", "0.5"]
    assert main(common + ["--out", str(tmp_path / "raised")]) == 0
    assert main(common + ["--out", str(tmp_path / "under"), "--underlined-cents-fraction",
                          "0.5"]) == 0
    raised, under = read_dataset(tmp_path / "raised"), read_dataset(tmp_path / "under")
    drawn = [has_raised_cents(0.5, 5, i) and has_underlined_cents(0.5, 5, i) for i in range(12)]
    assert any(drawn) and not all(drawn)
    assert any(has_underlined_cents(0.5, 5, i) and not has_raised_cents(0.5, 5, i)
               for i in range(12))  # drawn for underlining, but with no raised cents
    for r, u, changed in zip(raised, under, drawn):
        assert (r.text, r.amount) == (u.text, u.amount)
        assert [c.char for c in r.chars] == [c.char for c in u.chars]
        assert np.array_equal(r.load(), u.load()) == (not changed) == (r.chars == u.chars)


def test_written_cheques_decode_on_the_fast_png_route():
    """make_cheques' PNGs are Sub-filtered, which `pipelines.png` decodes (not libpng's Paeth
    rows, which it leaves to the slower decoders), to the same pixels."""
    from pipelines.cheques import encode_png
    from pipelines.png import decode_grey_png

    sample = next(generate_cheques(1, 3, "test"))
    decoded = decode_grey_png(encode_png(sample.image), 10**8)
    assert decoded is not None and np.array_equal(decoded, sample.image)
