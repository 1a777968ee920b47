"""The fast greyscale-PNG decoder against PNGs built by hand, OpenCV and Pillow."""

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pipelines.images import load_gray
from pipelines.png import decode_grey_png, grey_png_size, row_prefix_sums, unfilter
from pipelines.preparation import load_source

LIMIT = 40_000_000


def chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(
        ">I", zlib.crc32(kind + payload))


def filtered(image: np.ndarray, kinds: list[int]) -> bytes:
    """The scanlines of `image`, row y filtered by kinds[y] (0 None, 1 Sub, 2 Up, 3 Average,
    4 Paeth), written straight from the PNG specification."""
    h, w = image.shape
    img = image.astype(np.int64)
    out = bytearray()
    for y in range(h):
        out.append(kinds[y])
        for x in range(w):
            left = img[y, x - 1] if x else 0
            up = img[y - 1, x] if y else 0
            corner = img[y - 1, x - 1] if x and y else 0
            if kinds[y] == 0:
                pred = 0
            elif kinds[y] == 1:
                pred = left
            elif kinds[y] == 2:
                pred = up
            elif kinds[y] == 3:
                pred = (left + up) // 2
            else:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
            out.append(int(img[y, x] - pred) % 256)
    return bytes(out)


def grey_png(image: np.ndarray, kinds: list[int], pieces: int = 1,
             extra: tuple[tuple[bytes, bytes], ...] = (), depth: int = 8, colour: int = 0
             ) -> bytes:
    h, w = image.shape
    stream = zlib.compress(filtered(image, kinds))
    step = -(-len(stream) // pieces)
    idats = b"".join(chunk(b"IDAT", stream[i : i + step]) for i in range(0, len(stream), step))
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))
    extras = b"".join(chunk(k, p) for k, p in extra)
    return b"\x89PNG\r\n\x1a\n" + header + extras + idats + chunk(b"IEND", b"")


@st.composite
def images_and_filters(draw):
    h = draw(st.integers(1, 12))
    w = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**31 - 1))
    image = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
    kinds = draw(st.lists(st.integers(0, 4), min_size=h, max_size=h))
    return image, kinds, draw(st.integers(1, 4))


@settings(max_examples=60, deadline=None)
@given(images_and_filters())
def test_rows_filtered_any_way_decode_exactly(case):
    image, kinds, pieces = case
    data = grey_png(image, kinds, pieces, extra=((b"pHYs", bytes(9)), (b"tEXt", b"a\0b")))
    assert np.array_equal(decode_grey_png(data, LIMIT), image)
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE),
                          image)  # the hand-made file is a valid PNG


def test_average_or_paeth_rows_are_decoded_by_opencv():
    image = np.arange(30, dtype=np.uint8).reshape(5, 6) * 7
    for kind in (3, 4):
        data = grey_png(image, [1, 1, kind, 0, 2])
        assert unfilter(np.frombuffer(zlib.decompress(grey_png_stream(data)), np.uint8)
                        .reshape(5, 7)) is None  # not by the array route
        assert np.array_equal(decode_grey_png(data, LIMIT), image)
        assert np.array_equal(load_source(data), image)
    bad = bytearray(grey_png(image, [1, 1, 9, 0, 2], extra=()))
    assert decode_grey_png(bytes(bad), LIMIT) is None  # filter type 9: damaged


def grey_png_stream(data: bytes) -> bytes:
    """The IDAT payload of a one-IDAT file made by `grey_png`."""
    at = data.index(b"IDAT")
    return data[at + 4 : at + 4 + struct.unpack(">I", data[at - 4 : at])[0]]


def test_row_prefix_sums_in_strips_match_cumsum(monkeypatch):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (37, 51), dtype=np.uint8)
    want = np.cumsum(pixels, axis=1, dtype=np.uint8)
    assert np.array_equal(row_prefix_sums(pixels), want)
    monkeypatch.setattr("pipelines.png._INTEGRAL_PIXELS", 51 * 5)  # strips of 5 rows
    assert np.array_equal(row_prefix_sums(pixels), want)
    lines = np.concatenate([np.full((37, 1), 9, np.uint8), pixels], axis=1)
    assert unfilter(lines) is None  # no such filter type


def test_opencv_and_pillow_files_decode_as_they_do(tmp_path):
    rng = np.random.default_rng(1)
    image = np.clip(rng.normal(200, 40, (90, 130)), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".png", image)
    data = encoded.tobytes()
    assert np.array_equal(decode_grey_png(data, LIMIT), image)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)  # adaptive filters
    fast = decode_grey_png(buf.getvalue(), LIMIT)
    assert fast is None or np.array_equal(fast, image)
    path = tmp_path / "scan.png"
    path.write_bytes(data)
    assert np.array_equal(load_gray(path), image)


def test_other_pngs_and_damaged_ones_get_none():
    image = np.full((10, 10), 200, np.uint8)
    good = grey_png(image, [1] * 10)
    assert decode_grey_png(good, LIMIT) is not None
    assert decode_grey_png(good, 99) is None  # over the pixel limit
    assert decode_grey_png(good[:-20], LIMIT) is None  # truncated
    assert decode_grey_png(good[:40], LIMIT) is None
    assert decode_grey_png(b"not a png at all, only text", LIMIT) is None
    broken_header = bytearray(good)
    broken_header[20] ^= 1  # the width: the header's CRC no longer matches
    assert grey_png_size(bytes(broken_header[:33])) is None
    at = good.index(b"IDAT") + 10
    broken_pixels = good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1 :]
    assert decode_grey_png(broken_pixels, LIMIT) is None
    transparent = grey_png(image, [1] * 10, extra=((b"tRNS", b"\0\0"),))
    assert decode_grey_png(transparent, LIMIT) is None
    exif = grey_png(image, [1] * 10, extra=((b"eXIf", b"MM\0*"),))
    assert decode_grey_png(exif, LIMIT) is None
    xmp = grey_png(image, [1] * 10, extra=((b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0<x/>"),))
    assert decode_grey_png(xmp, LIMIT) is None  # may hold an orientation Pillow applies
    rgb = good.replace(good[8:33], chunk(b"IHDR", struct.pack(">IIBBBBB", 10, 10, 8, 2, 0, 0,
                                                               0)))
    assert decode_grey_png(rgb, LIMIT) is None


@pytest.mark.parametrize("size", [(5, 100), (100, 5)])
def test_a_tiny_png_file_is_still_refused(tmp_path, size):
    path = tmp_path / "tiny.png"
    cv2.imwrite(str(path), np.full(size, 255, np.uint8))
    with pytest.raises(ValueError, match="too small"):
        load_gray(path)


def test_tall_files_decode_exactly_past_the_first_rows():
    """Rows past the first look (`_FIRST_ROWS`): all Sub/Up/None, or a Paeth row late."""
    from pipelines.png import _FIRST_ROWS

    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (3 * _FIRST_ROWS, 9), dtype=np.uint8)
    plain = [int(k) for k in rng.integers(0, 3, len(image))]
    late = plain[:]
    late[2 * _FIRST_ROWS] = 4
    for kinds in (plain, late):
        assert np.array_equal(decode_grey_png(grey_png(image, kinds, pieces=3), LIMIT), image)
