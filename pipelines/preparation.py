"""The fixed front of the reader: candidate fields, their segmentation graphs and LeNet inputs.

Nothing here is learnable or needs torch: the image analysis runs in helper processes that start
without loading it (about 2 s sooner), and hands numpy arrays to the learnable part of the reader
(`pipelines.reader`), which wraps them as tensors without copying.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from pipelines.charimage import to_context_batch, to_lenet_batch
from pipelines.fields import (
    Box,
    FieldCandidate,
    FieldRanker,
    PageInk,
    analyse_page,
    propose_fields,
    to_working,
    unturn_box,
    whole_image_field,
)
from pipelines.metrics import iou
from pipelines.page import (
    box_to_scan,
    content_box,
    cropped,
    ink_skew,
    scaled,
    straighten,
    then,
)
from pipelines.segmentation import Segmentation, segment_field

if TYPE_CHECKING:  # Pillow is imported only when a file is read
    from pipelines.images import Page

# Reading keeps the candidate fields the proposer scores within this much (log) of its best:
# chosen on validation cheques (see the model card), it reads as well as keeping all three.
FIELD_BEAM = 4.0
# A landscape page skewed this much (degrees, by `page.ink_skew`) or more is read straightened.
# Level pages estimate 0 (within ~1.5 degrees of level, which the field search and the
# segmentation's own deskew handle); pages turned 2 degrees estimate 0-3.5, turned 4 degrees
# 2.5-5.5 (on the samples).
PAGE_SKEW_FROM = 3.0


class HasRanker(Protocol):
    """A field scorer module (`pipelines.field_scorer.FieldScorer`)."""

    def ranker(self) -> FieldRanker: ...


FieldChooser = FieldRanker | HasRanker


def no_inputs() -> np.ndarray:
    return np.zeros((0, 1, 32, 32), np.float32)


@dataclass
class Prepared:
    """The fixed (non-learnable) front of the pipeline for one image: candidate fields, their
    segmentations and LeNet inputs. Reused across epochs in training."""

    fields: list[FieldCandidate]
    segmentations: list[Segmentation]
    # (sum of arcs, 2, 32, 32) float32: each candidate character (`charimage.to_lenet_input`)
    # and, mapped the same way, the ink around it (`charimage.to_context_ink`)
    inputs: np.ndarray
    field_features: np.ndarray  # (K, F) float32
    image_shape: tuple[int, int] = (0, 0)  # (H, W) of the image, for boxes of turned fields
    # A page read cut to `crop`, enlarged by `scale` and/or straightened by `skew` degrees
    # (`page.reading_canvas`): the (2, 3) map from the pixels of the page read (`image_shape`)
    # back to the scan's, and the scan's (H, W).
    skew: float = 0.0
    to_scan: np.ndarray | None = None
    scan_shape: tuple[int, int] = (0, 0)
    scale: float = 1.0
    crop: tuple[int, int, int, int] | None = None  # the part of the scan read (x, y, w, h)
    # The candidate characters that may be raised digits (`Segmentation.raised`),
    # normalised on their own (paper mode), as a raised digit is read: (sum of them, 1, 32, 32).
    raised_inputs: np.ndarray = field(default_factory=no_inputs)

    @property
    def arc_counts(self) -> list[int]:
        return [s.num_arcs for s in self.segmentations]

    @property
    def raised_counts(self) -> list[int]:
        return [int(s.raised.sum()) for s in self.segmentations]


def as_ranker(field_scorer: FieldChooser | None) -> FieldRanker | None:
    """The numpy ranker of a field scorer module (or the ranker itself)."""
    if field_scorer is None or isinstance(field_scorer, FieldRanker):
        return field_scorer
    return field_scorer.ranker()


@dataclass
class FieldSearch:
    """Where `search_fields` looked for fields and what it kept: the page as read, the image in
    each orientation searched (quarter turns), the candidate fields, and the scan's shape."""

    view: PageAsRead
    turned: dict[int, np.ndarray]
    candidates: list[FieldCandidate]
    scan_shape: tuple[int, int]


def box_in_scan(box: Box, turns: int, image_shape: tuple[int, int], to_scan: np.ndarray | None,
                scan_shape: tuple[int, int]) -> Box:
    """A box of the page as read (`image_shape`) turned `turns` quarter turns, in the scan's
    own pixels (`to_scan` maps the page's pixels to the scan's, None: it is the scan)."""
    if turns:  # a field found in the page turned: back to the page's pixels
        box = unturn_box(box, turns, image_shape)
    if to_scan is not None:  # read straightened, cut out or enlarged: the box around it
        box = box_to_scan(box, to_scan, scan_shape)
    return box


def search_fields(image: np.ndarray, is_field: bool = False, max_fields: int = 3,
                  field_scorer: FieldChooser | None = None, field_beam: float = FIELD_BEAM,
                  upside_down: bool = False, straighten_from: float | None = PAGE_SKEW_FROM,
                  faint_pen: bool = False, zoom: float = 1.0) -> FieldSearch:
    """The candidate fields of a scan (or the whole image): the first half of `prepare`,
    whose arguments these are."""
    scan_shape = (image.shape[0], image.shape[1])
    view = page_as_read(image, is_field, straighten_from, zoom)
    image = view.image
    # A cheque is wider than tall: a portrait scan may be one on its side (or a photo of an
    # upright one), so its fields are also looked for a quarter turn either way, and the
    # recognizer and the grammar choose among them all.
    if upside_down:
        orientations: tuple[int, ...] = (2,)
    elif not is_field and image.shape[0] > image.shape[1]:
        orientations = (0, 1, 3)
    else:
        orientations = (0,)
    turned = {t: np.ascontiguousarray(np.rot90(image, t)) if t else image for t in orientations}
    candidates: list[FieldCandidate] = []
    ranker = None if is_field else as_ranker(field_scorer)
    for t in orientations:
        if is_field:
            candidates.append(replace(whole_image_field(turned[t]), turns=t))
        else:
            found = [replace(c, turns=t) for c in
                     page_fields(turned[t], faint_pen, view.page if t == 0 else None)]
            candidates += best_fields(found, ranker, max_fields, field_beam)
    if len(orientations) == 3 and image.shape[0] < BANDED_PAGE_ASPECT * image.shape[1]:
        # a page (not a cheque on its side): also a cheque in its top, middle or bottom third
        candidates += [cand for top, band in page_bands(image)
                       for cand in best_fields(band_fields(band, top, faint_pen), ranker,
                                                max_fields, field_beam)]
    return FieldSearch(view, turned, candidates, scan_shape)


# A portrait page may be a business cheque with its voucher: a letter page whose top, middle or
# bottom third is the cheque, the rest printed remittance text. Its field search then also
# looks at each third on its own, as a landscape page; not a cheque on its side, whose height
# is over BANDED_PAGE_ASPECT times its width (a cheque's is ~2.3 times, a letter or A4 page's
# 1.3-1.4).
PAGE_BANDS = 3
BANDED_PAGE_ASPECT = 1.8


def page_bands(image: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """The PAGE_BANDS horizontal bands of a portrait page, each with the row it starts at."""
    h = image.shape[0]
    edges = [round(k * h / PAGE_BANDS) for k in range(PAGE_BANDS + 1)]
    return [(a, image[a:b]) for a, b in zip(edges[:-1], edges[1:])]


def band_fields(band: np.ndarray, top: int, faint_pen: bool) -> list[FieldCandidate]:
    """The candidate fields of a band of a page (`page_bands`), searched as a page of its own,
    with boxes in the whole page's pixels."""
    return [replace(c, box=(c.box[0], c.box[1] + top, c.box[2], c.box[3]))
            for c in page_fields(band, faint_pen)]


def drawn_thicker(gray: np.ndarray, pen: int) -> np.ndarray:
    """A greyscale image (paper light) with its ink spread `pen` pixels a side (a grey
    erosion), or thinned by -`pen` (a dilation); the image itself for 0."""
    if pen == 0:
        return gray
    kernel = np.ones((2 * abs(pen) + 1,) * 2, np.uint8)
    return cv2.erode(gray, kernel) if pen > 0 else cv2.dilate(gray, kernel)


def page_fields(image: np.ndarray, faint_pen: bool, page: PageInk | None = None
                ) -> list[FieldCandidate]:
    """`propose_fields` of an image (with its `analyse_page` when known); with `faint_pen`,
    in the ink of a pale pen (`fields.faint_pen_ink`) instead."""
    if faint_pen:
        page = analyse_page(to_working(image), faint_pen=True)
    return propose_fields(image, page=page)


def prepare_found(search: FieldSearch, pen: int = 0) -> Prepared:
    """Segment each field a search found and normalise every candidate character for LeNet:
    the second half of `prepare`; each field drawn with a pen `pen` pixels a side thicker
    (`drawn_thicker`). Raises ValueError when no field holds ink."""
    fields, segs = [], []
    for cand in search.candidates:
        x, y, w, h = cand.box
        try:
            seg = segment_field(drawn_thicker(search.turned[cand.turns][y : y + h, x : x + w],
                                              pen))
        except ValueError:
            continue  # a candidate without ink is no field
        fields.append(cand)
        segs.append(seg)
    if not segs:
        raise ValueError("no handwriting found in any candidate amount field")
    patches, heights, tops, raised, surrounds, ats = [], [], [], [], [], []
    for seg in segs:
        p, t = seg.arc_patches()
        patches += p
        tops += t.tolist()
        heights += [seg.line.height] * len(p)
        raised += [q for q, up in zip(p, seg.raised) if up]
        surrounds += [seg.piece_ink()] * len(p)
        ats += [(y, x) for x, y in seg.boxes[:, :2].tolist()]
    inputs = np.concatenate([to_lenet_batch(patches, heights, tops),
                             to_context_batch(patches, heights, tops, surrounds, ats)], 1)
    view = search.view
    return Prepared(fields, segs, inputs, np.stack([c.features for c in fields]),
                    (view.image.shape[0], view.image.shape[1]), view.skew, view.to_scan,
                    search.scan_shape, view.scale, view.crop,
                    raised_inputs=to_lenet_batch(raised))


def prepare(image: np.ndarray, is_field: bool = False, max_fields: int = 3,
            field_scorer: FieldChooser | None = None, field_beam: float = FIELD_BEAM,
            upside_down: bool = False, straighten_from: float | None = PAGE_SKEW_FROM,
            faint_pen: bool = False, zoom: float = 1.0, pen: int = 0) -> Prepared:
    """Propose fields (or take the whole image), segment each and normalise every candidate
    character for LeNet. Raises ValueError when no field holds ink.

    With a `field_scorer`, the `max_fields` best candidates are kept, less those scoring more
    than `field_beam` below the best (a beam: reading prunes, training keeps all alternatives).
    The scan is first made into the page as read (`page_as_read`: grey levels, a cheque cut
    out of a larger page, a small scan enlarged, a page skewed by `straighten_from` degrees or
    more straightened). A portrait image is searched as it is and turned a quarter either
    way, keeping that many of each orientation. With `upside_down`, the image is searched
    turned a half turn instead, and only so (the reader's second try at a scan it read with
    little confidence). With `faint_pen`, fields are looked for in the ink that
    `fields.faint_pen_ink` finds (the reader's look for a field that a pale pen hid). The page
    is read `zoom` times the size it would be read at, and its fields are segmented drawn
    with a pen `pen` pixels a side thicker or (negative) thinner than it is (the reader's
    looks at a scan it read with little confidence: `other_views`).
    """
    return prepare_found(search_fields(image, is_field, max_fields, field_scorer, field_beam,
                                       upside_down, straighten_from, faint_pen, zoom), pen)


# A cheque scan whose longer side is under MIN_LONG_SIDE pixels (under ~150 dpi) is read
# enlarged to UPSCALE_TO: the 12 samples at 0.3-0.56 of their size (528-987 pixels wide) read
# 6, 7, 10 and 10 right as they are, 12, 11, 10 and 11 enlarged; at 0.6 (1057), 12 either way.
# One over MAX_LONG_SIDE (a 400-600 dpi scan; the training cheques are 1,560-1,900 pixels wide)
# is read reduced to DOWNSCALE_TO: 300 validation cheques at twice their size read 87.7% ->
# 90.3% right (89.0% at their own size). An amount-field image (`--field`) under
# MIN_FIELD_HEIGHT pixels tall is read enlarged to FIELD_UPSCALE_TO, one over MAX_FIELD_HEIGHT
# (training fields are 69-159 tall) reduced to FIELD_DOWNSCALE_TO: 300 validation fields at
# two and three times their size 86.0 -> 87.0% and 82.0 -> 88.0% (88.7% at their own size).
MIN_LONG_SIDE = 1000
UPSCALE_TO = 1400
MAX_LONG_SIDE = 2600
DOWNSCALE_TO = 1800
MIN_FIELD_HEIGHT = 64
FIELD_UPSCALE_TO = 110
MAX_FIELD_HEIGHT = 200
FIELD_DOWNSCALE_TO = 120


def upscale_factor(shape: tuple[int, ...], is_field: bool = False) -> float:
    """How much to enlarge (or reduce) a cheque scan (or with `is_field`, an amount-field
    image) of `shape` (H, W) before reading it (1: not)."""
    if is_field:
        if shape[0] > MAX_FIELD_HEIGHT:
            return FIELD_DOWNSCALE_TO / shape[0]
        return FIELD_UPSCALE_TO / shape[0] if 0 < shape[0] < MIN_FIELD_HEIGHT else 1.0
    long_side = max(shape[0], shape[1])
    if long_side > MAX_LONG_SIDE:
        return DOWNSCALE_TO / long_side
    return UPSCALE_TO / long_side if 0 < long_side < MIN_LONG_SIDE else 1.0


# A scan is stretched to full contrast when its darkest 0.1% is lighter than FADED_FROM (faded
# ink, a pale copy) or when less than LOW_CONTRAST grey levels lie between its darkest and
# lightest 0.1% (an underexposed scan; about 210 on the synthetic cheques), as long as at
# least MIN_CONTRAST do (a blank page has none to stretch).
FADED_FROM = 80
LOW_CONTRAST = 120
MIN_CONTRAST = 24
# A negative's light pixels are its writing and print: 4-7% of the samples' negatives. A photo
# of a cheque on a dark desk is dark around a light cheque: 10-40% light (cheque at 15-45% of
# the frame), and is no negative.
NEGATIVE_LIGHT_BELOW = 0.08


def level_histogram(gray: np.ndarray) -> np.ndarray:
    """(256,) counts of the grey levels of a sample of the rows (about 150,000 pixels)."""
    step = max(1, gray.size // 150_000)
    return cv2.calcHist([gray[::step]], [0], None, [256], [0, 256]).ravel()


def grey_levels(hist: np.ndarray, fractions: Sequence[float]) -> list[int]:
    """The grey levels below which these fractions of a histogram's pixels lie."""
    cdf = np.cumsum(hist)
    return [int(np.searchsorted(cdf, f * cdf[-1])) for f in fractions]


def restore_contrast(gray: np.ndarray, hist: np.ndarray | None = None) -> np.ndarray:
    """A faded or low-contrast scan stretched so that its darkest 0.1% is black and its
    lightest 0.1% white; any other scan as it is. (Stretching every scan reads worse: 87.0%
    against 89.3% of 300 validation cheques, none of low contrast.) `hist`: its
    `level_histogram`, if known."""
    lo, hi = grey_levels(level_histogram(gray) if hist is None else hist, (0.001, 0.999))
    if hi - lo < MIN_CONTRAST or (lo < FADED_FROM and hi - lo >= LOW_CONTRAST):
        return gray
    lut = np.clip((np.arange(256, dtype=np.float32) - lo) * (255.0 / (hi - lo)), 0, 255)
    return cv2.LUT(gray, lut.astype(np.uint8))


def undo_negative(gray: np.ndarray, hist: np.ndarray | None = None) -> np.ndarray:
    """A negative (light writing on dark paper: the paper level, the median, is dark, the
    lightest pixels lie far further from it than the darkest, and few pixels are light)
    turned positive; any other scan as it is. `hist`: its `level_histogram`, if known."""
    hist = level_histogram(gray) if hist is None else hist
    lo, paper, hi = grey_levels(hist, (0.005, 0.5, 0.995))
    light = hist[(paper + hi) // 2 + 1 :].sum() / max(hist.sum(), 1)
    if paper < 128 and hi - paper > 2 * (paper - lo) + 16 and light < NEGATIVE_LIGHT_BELOW:
        return cv2.bitwise_not(gray)
    return gray


def normal_levels(gray: np.ndarray) -> np.ndarray:
    """`undo_negative` then `restore_contrast`, from one histogram."""
    hist = level_histogram(gray)
    positive = undo_negative(gray, hist)
    return restore_contrast(positive, hist if positive is gray else hist[::-1])


@dataclass
class PageAsRead:
    """A scan as the reader reads it (`page_as_read`): the image, its working-scale analysis
    when that is known (for a landscape cheque), and how it was made from the scan: cut to
    `crop`, enlarged by `scale`, straightened by `skew` degrees; `to_scan` maps its pixels
    back to the scan's (None: it is the scan)."""

    image: np.ndarray
    page: PageInk | None
    to_scan: np.ndarray | None
    crop: tuple[int, int, int, int] | None
    scale: float
    skew: float


def page_as_read(image: np.ndarray, is_field: bool,
                 straighten_from: float | None = PAGE_SKEW_FROM, zoom: float = 1.0
                 ) -> PageAsRead:
    """Grey levels made normal (`normal_levels`); a cheque on a larger page cut out of it
    (`page.content_box`); a small scan enlarged (`upscale_factor`), and the page then resized
    by `zoom`; a landscape page skewed by `straighten_from` degrees or more straightened
    (`page.ink_skew`; None: never)."""
    image = normal_levels(image)
    crop, page = None, None
    if not is_field:
        page = analyse_page(to_working(image))  # shared with the field search if not cut
        crop = content_box(page.ink, (image.shape[0], image.shape[1]))
    image, to_scan = cropped(image, crop)
    scale = upscale_factor(image.shape, is_field) * zoom
    image, back = scaled(image, scale)
    if back is not None:
        to_scan = then(to_scan, back)
    if crop is not None or back is not None or image.shape[0] > image.shape[1]:
        page = None
    skew = 0.0
    if not is_field and image.shape[0] <= image.shape[1]:
        if page is None:
            page = analyse_page(to_working(image))
        angle = ink_skew(page.ink) if straighten_from is not None else 0.0
        if straighten_from is not None and abs(angle) >= straighten_from:
            image, back = straighten(image, angle)
            to_scan, skew, page = then(to_scan, back), angle, None
    return PageAsRead(image, page, to_scan, crop, scale, skew)


def best_fields(candidates: list[FieldCandidate], ranker: FieldRanker | None, max_fields: int,
                field_beam: float) -> list[FieldCandidate]:
    """The `max_fields` best candidates by the ranker, less those scoring more than
    `field_beam` below the best, in their original order (the first ones without a ranker)."""
    if ranker is not None and len(candidates) > 1:
        scores = ranker(np.stack([c.features for c in candidates]))
        keep = np.argsort(-scores, kind="stable")[:max_fields]
        keep = keep[scores[keep] >= scores[keep[0]] - field_beam]
        candidates = [candidates[i] for i in sorted(keep.tolist())]
    return candidates[:max_fields]


def load_source(source: bytes | str | Path | Page) -> np.ndarray:
    """An encoded image (bytes), a file or a page of one as (H, W) uint8 greyscale; raises
    ImageError."""
    from pipelines.images import MAX_PIXELS, ImageError, load_gray
    from pipelines.png import decode_grey_png

    if isinstance(source, bytes):
        fast = decode_grey_png(source, MAX_PIXELS)
        if fast is not None:
            return fast
        gray = cv2.imdecode(np.frombuffer(source, np.uint8), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise ImageError("the image bytes could not be decoded")
        return gray
    return load_gray(source)


def prepare_source(source: bytes | str | Path | Page, is_field: bool,
                   field_scorer: FieldChooser | None, keep_images: bool = True
                   ) -> Prepared | str:
    """`prepare` on an encoded image (bytes) or a file; a failure comes back as its message.
    Without `keep_images` the segmentations lose their pictures (only --explain draws them)."""
    from pipelines.images import ImageError

    try:
        prep = prepare(load_source(source), is_field=is_field, field_scorer=field_scorer)
    except (ImageError, ValueError) as err:
        return str(err)
    except Exception as err:  # a reader bug must not stop the other inputs
        return f"could not read {source if not isinstance(source, bytes) else 'image'}: " \
               f"{type(err).__name__}: {err}"
    return prep if keep_images else without_images(prep)


def without_images(prep: Prepared) -> Prepared:
    return replace(prep, segmentations=[s.without_images() for s in prep.segmentations])


# Candidate fields read in a second view. Most second views are of upright scans, whose turned
# fields all score low, so that three pass the field beam: two cost a quarter less, and on 100
# training-split cheques turned over read as many right (90), turned and skewed one fewer.
SECOND_VIEW_FIELDS = 2
# A field the faint-pen look finds is one the first look read when their boxes overlap by more
# than this (intersection over union).
SAME_FIELD = 0.5


def upside_down_view(gray: np.ndarray, is_field: bool, field_scorer: FieldChooser | None,
                     keep_images: bool = True) -> Prepared | None:
    """An image the reader was unsure of, turned upside down (straightened too when skewed, as
    `prepare` does), with its SECOND_VIEW_FIELDS best candidate fields; None when no field
    holds ink."""
    try:
        prep = prepare(gray, is_field, SECOND_VIEW_FIELDS, field_scorer, upside_down=True)
    except ValueError:
        return None
    return prep if keep_images else without_images(prep)


@dataclass(frozen=True)
class Look:
    """How the reader looks again at a scan it read with little confidence: the page read at
    `zoom` times the size it is first read at, its fields segmented drawn with a pen `pen`
    pixels a side thicker (negative: thinner; `drawn_thicker`)."""

    zoom: float = 1.0
    pen: int = 0


def other_views(gray: np.ndarray, is_field: bool, field_scorer: FieldChooser | None,
                looks: Sequence[Look], keep_images: bool = True) -> list[Prepared | None]:
    """An image the reader was unsure of, prepared again as each of `looks` says
    (`prepare(zoom=..., pen=...)`: looks at one size share its field search); None for a
    look at which no field holds ink."""
    searches: dict[float, FieldSearch] = {}
    views: list[Prepared | None] = []
    for look in looks:
        try:
            if look.zoom not in searches:
                searches[look.zoom] = search_fields(gray, is_field, field_scorer=field_scorer,
                                                    zoom=look.zoom)
            prep = prepare_found(searches[look.zoom], look.pen)
        except ValueError:
            views.append(None)
            continue
        views.append(prep if keep_images else without_images(prep))
    return views


def faint_pen_view(gray: np.ndarray, first: Prepared, field_scorer: FieldChooser | None,
                   keep_images: bool = True) -> Prepared | None:
    """The first preparation of a cheque scan the reader was unsure of, with the fields a look
    in a pale pen's ink (`prepare(faint_pen=True)`) finds besides its own (those within
    SAME_FIELD intersection over union of one of them are its own); None when that look
    finds no other field holding ink."""
    search = search_fields(gray, field_scorer=field_scorer, faint_pen=True)
    shape = (search.view.image.shape[0], search.view.image.shape[1])
    if shape != first.image_shape:  # not the page the first look read (never, as it is made)
        return None
    new = [c for c in search.candidates
           if not any(c.turns == f.turns and iou(c.box, f.box) > SAME_FIELD for f in first.fields)]
    if not new:
        return None
    try:
        more = prepare_found(replace(search, candidates=new))
    except ValueError:
        return None
    if not keep_images:
        first, more = without_images(first), without_images(more)
    return replace(first, fields=first.fields + more.fields,
                   segmentations=first.segmentations + more.segmentations,
                   inputs=np.concatenate([first.inputs, more.inputs]),
                   raised_inputs=np.concatenate([first.raised_inputs, more.raised_inputs]),
                   field_features=np.concatenate([first.field_features, more.field_features]))


@dataclass(frozen=True)
class SecondLook:
    """A look the reader takes again at a source it read with little confidence (`source`:
    encoded bytes, a file, a page of one or a greyscale array): with `faint_pen`, its first
    preparation `first` with the fields a look in a pale pen's ink adds (`faint_pen_view`);
    with `upside_down`, the source turned a half turn (`upside_down_view`); else the views
    `looks` say (`other_views`). Plain data, so that a helper process can take it."""

    source: bytes | str | Path | Page | np.ndarray
    is_field: bool
    keep_images: bool = False
    faint_pen: bool = False
    first: Prepared | None = None
    upside_down: bool = False
    looks: tuple[Look, ...] = ()

    @property
    def views(self) -> int:
        return 1 if self.faint_pen or self.upside_down else len(self.looks)


def take_look(look: SecondLook, field_scorer: FieldChooser | None,
              gray: np.ndarray | None = None) -> list[Prepared | None]:
    """The `look.views` views a second look gives (`gray`: its source decoded, when known),
    None for each that holds no ink. A second look is optional, so a source that no longer
    decodes (a file changed since it was first read) or a look that fails unexpectedly (a
    bug) gives None views and the first reading stands."""
    try:
        if gray is None:
            gray = look.source if isinstance(look.source, np.ndarray) else load_source(
                look.source)
        if look.faint_pen:
            return [faint_pen_view(gray, look.first, field_scorer,  # type: ignore[arg-type]
                                   look.keep_images)]
        if look.upside_down:
            return [upside_down_view(gray, look.is_field, field_scorer, look.keep_images)]
        return list(other_views(gray, look.is_field, field_scorer, look.looks,
                                look.keep_images))
    except Exception:
        return [None] * look.views


class LooksHere:
    """`take_look` of each of a list of looks, in this process, decoding each source once
    for all the rounds of looks at it: the last `most_kept` sources decoded are kept (all of
    them without a bound, as long as this object lives)."""

    def __init__(self, field_scorer: FieldChooser | None, most_kept: int | None = None) -> None:
        self.ranker = as_ranker(field_scorer)
        self.most_kept = most_kept
        self.grays: dict[int, tuple[object, np.ndarray]] = {}  # by id, the source kept alive

    def __call__(self, looks: Sequence[SecondLook]) -> list[list[Prepared | None]]:
        return [self.take(look) for look in looks]

    def take(self, look: SecondLook) -> list[Prepared | None]:
        return take_look(look, self.ranker, self._gray(look.source))

    def _gray(self, source: bytes | str | Path | Page | np.ndarray) -> np.ndarray | None:
        if isinstance(source, np.ndarray):
            return source
        if id(source) not in self.grays:
            try:
                self.grays[id(source)] = (source, load_source(source))
            except Exception:  # take_look tells it again, as a look without views
                return None
            if self.most_kept is not None and len(self.grays) > self.most_kept:
                del self.grays[next(iter(self.grays))]  # the earliest decoded
        return self.grays[id(source)][1]
