"""A fast decoder for the commonest scan file: an 8-bit greyscale PNG.

Decoding a ~1.4-megapixel cheque scan took OpenCV (libpng) about 12 ms, a third of the
reader's time per cheque: inflating the pixel stream with zlib ~8 ms, and undoing the row
filters row by row. Here the stream is inflated by ISA-L where it is installed (`isal`, ~2.5 ms;
zlib otherwise) and the filters are undone a run of rows at a time with array operations.

Only what can be decoded exactly that way is: 8-bit greyscale, not interlaced, rows filtered
None, Sub or Up (OpenCV writes every row Sub), and no chunk that could change the pixels as the
reader takes them (transparency, an EXIF rotation, an unknown critical chunk). Rows filtered
Average or Paeth (libpng's adaptive choice for most of a scanner's rows) depend on the pixel
to their left, which no array operation undoes: such a file, once its stream is known whole,
goes to OpenCV (9.4 ms a generated cheque's file, against 12.6 ms through Pillow; the same
pixels). Anything
else, and any damaged file, gives None, and the caller's general decoder reads it (or names
its problem) as before.
"""

from __future__ import annotations

import struct
import sys
import zlib

import cv2
import numpy as np

try:  # ISA-L's inflate, about 3x zlib's speed
    from isal.isal_zlib import decompressobj
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    from zlib import decompressobj  # type: ignore[assignment]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Ancillary chunks that leave an 8-bit grey image's pixels as Pillow's and OpenCV's greyscale
# reads give them (colour management and gamma are not applied by either).
HARMLESS = frozenset((b"pHYs", b"tEXt", b"zTXt", b"iTXt", b"tIME", b"gAMA", b"cHRM", b"sRGB",
                      b"iCCP", b"sBIT", b"bKGD"))
# Text chunks whose keyword says they hold EXIF or XMP: Pillow turns the image by their
# orientation tag.
ROTATING_TEXT = (b"Raw profile type exif\0", b"Raw profile type APP1\0", b"XML:com.adobe.xmp\0")
# Rows summed at a time by cv2.integral, whose int32 sums must not overflow: 255 * 8e6 < 2**31.
_INTEGRAL_PIXELS = 8_000_000
_LOW_BYTE = 0 if sys.byteorder == "little" else 3
_FIRST_ROWS = 16  # rows inflated before the rest, to look at their filter types


def grey_png_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the first 33 bytes of an 8-bit greyscale non-interlaced PNG, else
    None."""
    if len(head) < 33 or head[:8] != SIGNATURE or head[12:16] != b"IHDR":
        return None
    if zlib.crc32(head[12:29]) != struct.unpack(">I", head[29:33])[0]:
        return None
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", head[16:29])
    if (depth, colour, compression, filtering, interlace) != (8, 0, 0, 0, 0) or not width \
            or not height:
        return None
    return width, height


def _pixel_stream(data: bytes) -> bytes | None:
    """The concatenated IDAT payloads, or None when a chunk other than IDAT, IEND and the
    harmless ones appears, or the file ends early."""
    parts: list[bytes] = []
    at = 33
    while at + 12 <= len(data):
        length = struct.unpack(">I", data[at : at + 4])[0]
        kind = data[at + 4 : at + 8]
        if at + 12 + length > len(data):
            return None
        if kind == b"IEND":
            return b"".join(parts)
        if kind == b"IDAT":
            parts.append(data[at + 8 : at + 8 + length])
        elif kind not in HARMLESS or data.startswith(ROTATING_TEXT, at + 8):
            return None
        at += 12 + length
    return None


def row_prefix_sums(pixels: np.ndarray) -> np.ndarray:
    """(H, W) uint8 -> each row's running sum mod 256 (the Sub filter undone): differences of
    the low bytes of cv2.integral's sums of consecutive rows."""
    rows = max(1, _INTEGRAL_PIXELS // pixels.shape[1])
    out = np.empty_like(pixels)
    for top in range(0, pixels.shape[0], rows):
        sums = cv2.integral(pixels[top : top + rows])  # (h + 1, W + 1) int32
        low = sums.view(np.uint8).reshape(sums.shape + (4,))[:, 1:, _LOW_BYTE]
        np.subtract(low[1:], low[:-1], out=out[top : top + rows])
    return out


def unfilter(lines: np.ndarray) -> np.ndarray | None:
    """(H, 1 + W) filtered scanlines (a filter-type byte, then the pixels) -> (H, W) pixels;
    None when a row is filtered Average or Paeth (or bears an invalid filter type)."""
    kinds = lines[:, 0]
    if kinds.max() > 2:
        return None
    pixels = lines[:, 1:]
    out = np.empty_like(pixels)
    edges = np.flatnonzero(np.diff(kinds)) + 1
    for a, b in zip([0, *edges.tolist()], [*edges.tolist(), len(kinds)]):
        if kinds[a] == 0:  # None
            out[a:b] = pixels[a:b]
        elif kinds[a] == 1:  # Sub: plus the pixel to the left
            out[a:b] = row_prefix_sums(pixels[a:b])
        else:  # Up: plus the pixel above (zero above the first row)
            out[a:b] = np.cumsum(pixels[a:b], axis=0, dtype=np.uint8)
            if a:
                out[a:b] += out[a - 1]
    return out


def decode_grey_png(data: bytes, max_pixels: int) -> np.ndarray | None:
    """The (H, W) uint8 image of an 8-bit greyscale PNG of at most `max_pixels` pixels that
    this decoder reads exactly; None for any other file, or a damaged one."""
    size = grey_png_size(data[:33])
    if size is None or size[0] * size[1] > max_pixels:
        return None
    width, height = size
    stream = _pixel_stream(data)
    if stream is None:
        return None
    expected = height * (width + 1)
    try:
        inflater = decompressobj()
        # The first rows first: a file with Average or Paeth rows mostly shows one there, and
        # goes to libpng before the rest is inflated for nothing.
        raw = inflater.decompress(stream, min(expected, _FIRST_ROWS * (width + 1)))
        kinds = raw[:: width + 1]
        if max(kinds, default=0) > 2:
            return _by_libpng(data, kinds)
        raw += inflater.decompress(inflater.unconsumed_tail, expected + 1 - len(raw))
    except Exception:  # a damaged stream: the general decoder names the problem
        return None
    if len(raw) != expected or not inflater.eof:
        return None
    lines = np.frombuffer(raw, np.uint8).reshape(height, width + 1)
    pixels = unfilter(lines)
    return pixels if pixels is not None else _by_libpng(data, lines[:, 0].tobytes())


def _by_libpng(data: bytes, kinds: bytes) -> np.ndarray | None:
    """OpenCV's decoding of a file with Average or Paeth rows (which libpng undoes pixel by
    pixel), given the filter types seen; None when one is no filter type (a damaged file)."""
    if max(kinds) > 4:
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
