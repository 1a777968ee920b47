"""The read_cheque command line: output formats, exit codes, and every kind of bad input."""

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.read_cheque import main

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SAMPLE = SAMPLES / "00003.png"


def huge_png(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height pixels (the pixel data is a stub)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


@pytest.fixture
def bad_inputs(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image at all")
    data = SAMPLE.read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 3])
    huge_png(tmp_path / "huge.png", 100_000, 100_000)
    Image.fromarray(np.full((700, 1600), 235, np.uint8)).save(tmp_path / "blank.png")
    (tmp_path / "folder").mkdir()
    return {name: tmp_path / name for name in
            ["empty.png", "text.png", "truncated.png", "huge.png", "blank.png", "folder",
             "missing.png"]}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_output_has_the_contract_keys(capsys):
    code, out, _ = run(capsys, SAMPLE, "--json")
    (line,) = out.splitlines()
    record = json.loads(line)
    assert set(record) == {"path", "amount", "text", "confidence", "rejected", "field_box",
                           "error"}
    assert record["path"] == str(SAMPLE) and record["error"] is None
    assert 0.0 <= record["confidence"] <= 1.0
    assert len(record["field_box"]) == 4
    assert code == (1 if record["rejected"] else 0)


def test_plain_output_is_path_amount_confidence(capsys):
    code, out, _ = run(capsys, SAMPLE, SAMPLES / "00004.png", "--reject-below", "0")
    lines = out.splitlines()
    assert len(lines) == 2 and code == 0
    for line, path in zip(lines, [SAMPLE, SAMPLES / "00004.png"]):
        p, amount, conf = line.split("\t")
        assert p == str(path) and amount != "REJECT" and 0.0 <= float(conf) <= 1.0


def test_every_bad_input_is_an_error_and_the_good_one_is_still_read(capsys, bad_inputs):
    paths = list(bad_inputs.values()) + [SAMPLE]
    code, out, _ = run(capsys, *paths, "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in records] == [str(p) for p in paths]
    errors = {Path(r["path"]).name: r["error"] for r in records}
    assert "empty" in errors["empty.png"]
    assert "not an image" in errors["text.png"]
    assert "corrupt or truncated" in errors["truncated.png"]
    assert "limit of 40,000,000 pixels" in errors["huge.png"]
    assert "no handwriting" in errors["blank.png"]
    assert "directory" in errors["folder"]
    assert "does not exist" in errors["missing.png"]
    assert records[-1]["error"] is None and records[-1]["text"]
    assert all(r["rejected"] for r in records[:-1])
    assert code == 1


def test_plain_mode_reports_failures_on_stderr(capsys, bad_inputs):
    code, out, err = run(capsys, bad_inputs["empty.png"])
    assert out.strip().split("\t")[1] == "REJECT"
    assert "empty" in err and "Traceback" not in err and code == 1


def test_zoom_below_sets_when_a_scan_is_read_at_other_sizes(capsys):
    """Sample 00002 reads 20.00 at 0.629 confidence as it is: under 0.7 (the default) it is
    read at other sizes too, which changes its confidence; with 0 it is not."""
    confidences = []
    for value in ("0", "0.7"):
        code, out, _ = run(capsys, SAMPLES / "00002.png", "--grammar", "eu", "--zoom-below", value)
        _, amount, confidence = out.strip().split("\t")
        confidences.append(float(confidence))
    assert confidences[0] == pytest.approx(0.629, abs=0.01)
    assert abs(confidences[1] - confidences[0]) > 0.02


def test_readers_reads_with_the_first_readers_of_the_mixture_only(capsys):
    """--readers 1 reads as the first reader's own weights file; a count the weights do not
    hold is a usage error naming it."""
    first = run(capsys, SAMPLE, "--json", "--readers", "1")
    alone = run(capsys, SAMPLE, "--json", "--weights",
                SAMPLES.parent / "pipelines" / "weights" / "reader.pt")
    assert first[0] == alone[0] and json.loads(first[1]) == json.loads(alone[1])
    for bad in ("0", "5"):
        code, out, err = run(capsys, SAMPLE, "--readers", bad)
        assert code == 2 and out == "" and "Traceback" not in err
        assert ("the weights hold 4 readers: the number of readers must be within 1..4, "
                f"got {bad}") in err


def test_helper_processes_read_as_this_process_alone(capsys, tmp_path):
    """With a helper taking the first preparations and the second looks (every scan looked at
    again: --zoom-below 1), the output is line for line what one process prints."""
    (tmp_path / "text.png").write_text("not an image at all")
    paths = [*sorted(SAMPLES.glob("0000[0-5].png")), tmp_path / "text.png", SAMPLES / "00006.png"]
    outputs = []
    for workers in ("1", "2"):
        code, out, _ = run(capsys, *paths, "--json", "--zoom-below", "1", "--workers", workers)
        assert code == 1  # the text file failed
        outputs.append([json.loads(line) for line in out.splitlines()])
    assert len(outputs[0]) == len(paths) and outputs[0] == outputs[1]
    assert outputs[0][6]["error"] and outputs[0][7]["amount"]


@pytest.mark.parametrize("argv", [["--grammar", "fr"], ["--reject-below", "1.5"], [],
                                  ["--zoom-below", "-0.1"], ["--zoom-below", "2"],
                                  ["--weights", "/nonexistent/weights.pt"], ["--workers", "0"],
                                  ["--threads", "0"], ["--device", "bogus"]])
def test_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        code = main([*argv, str(SAMPLE)] if argv else [])
        raise SystemExit(code)
    assert exit_.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_field_mode_and_explain_picture(capsys, tmp_path):
    from pipelines.cheques import generate_cheque

    field = generate_cheque(5, "test", fields_only=True)
    Image.fromarray(field.image).save(tmp_path / "field.png")
    picture = tmp_path / "explain.png"
    code, out, _ = run(capsys, tmp_path / "field.png", "--field", "--json", "--explain", picture)
    record = json.loads(out)
    assert record["error"] is None and record["text"]
    assert picture.exists() and Image.open(picture).size[0] >= 900


def test_real_subprocess_run():
    proc = subprocess.run([sys.executable, "-m", "pipelines.read_cheque", str(SAMPLE)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    assert proc.stdout.startswith(str(SAMPLE) + "\t")


def test_output_closed_early_ends_quietly() -> None:
    """`read_cheque ... | head` closes the pipe early: no BrokenPipeError traceback."""
    for buffered in ("", "1"):  # stdout written at once or at the end
        env = {**__import__("os").environ, "PYTHONUNBUFFERED": buffered}
        if not buffered:
            env.pop("PYTHONUNBUFFERED")
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.read_cheque", str(SAMPLE),
                                 str(SAMPLES / "00004.png"), "--json"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # whoever read the output has gone away before the first line
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 1, err
        assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize("argv", [
    ["pipelines.benchmark", "cheques", "--n", "2", "--threads", "0"],
    ["pipelines.benchmark", "cheques", "--n", "2", "--workers", "0"],
    ["pipelines.benchmark", "mnist", "--threads", "0"],
    ["pipelines.train", "global", "--data", "samples", "--threads", "x"],
    ["gtn.bench", "--budget", "-1"],
    ["gtn.bench", "--out", "/nonexistent/rows.json"],
    # outputs that cannot be written are refused before any work: a folder, a file in the way
    ["pipelines.read_cheque", "samples/00004.png", "--explain", "samples"],
    ["pipelines.read_cheque", "samples/00004.png", "--explain", "explained.txt"],
    ["pipelines.train", "chars", "--limit", "20", "--out", "samples"],
    ["pipelines.benchmark", "mnist", "--confusion", "samples/00004.png/c.png"],
    ["pipelines.train", "global", "--data", "samples", "--out", "samples/00004.png/r.pt"],
    ["pipelines.benchmark", "global", "--save-global", "samples"],
])
def test_other_commands_refuse_bad_arguments_without_a_traceback(argv):
    proc = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True,
                          cwd=SAMPLES.parent, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert ("error" in last or "cannot write" in last or "not a picture" in last), last


def test_every_page_of_a_multi_page_tiff_is_read(capsys, tmp_path):
    """A batch scanned into one TIFF: each page is an input of its own, `PATH[n]` in plain
    output, the file and `page` n in JSON; a page that cannot be read is an error for that
    page alone."""
    pages = [Image.open(SAMPLES / name).convert("L") for name in ("00003.png", "00004.png")]
    tiff = tmp_path / "batch.tiff"
    pages[0].save(tiff, save_all=True, append_images=pages[1:])
    singles = [run(capsys, SAMPLES / name)[1].strip().split("\t")[1:] for name in
               ("00003.png", "00004.png")]
    code, out, _ = run(capsys, tiff, SAMPLE)
    lines = [line.split("\t") for line in out.splitlines()]
    assert [line[0] for line in lines] == [f"{tiff}[1]", f"{tiff}[2]", str(SAMPLE)]
    assert [line[1:] for line in lines[:2]] == singles
    _, out, _ = run(capsys, tiff, "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["path"], r["page"]) for r in records] == [(str(tiff), 1), (str(tiff), 2)]
    assert [r["amount"] or "REJECT" for r in records] == [s[0] for s in singles]
    # the second page cut short: an error for it alone, the first page read as before
    data = tiff.read_bytes()
    cut = tmp_path / "cut.tiff"
    cut.write_bytes(data[: len(data) - 2000])
    code, out, err = run(capsys, cut, "--json")
    first, second = (json.loads(line) for line in out.splitlines())
    assert (first["error"], first["amount"] or "REJECT") == (None, singles[0][0])
    assert f"{cut}[2] is corrupt or truncated" in second["error"] and code == 1
    assert err == ""
    # the library function reads a page too
    from pipelines.images import Page
    from pipelines.reader import read_cheque

    assert (read_cheque(Page(str(tiff), 1)).amount or "REJECT") == singles[1][0]
