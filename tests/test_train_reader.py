"""Module-by-module training: candidate labels, the weighted recognizer loss, the segmented
training set and a short fine-tuning run."""

from __future__ import annotations

import pytest
import torch

from pipelines.charset import RUBBISH, class_index
from pipelines.lenet import LeNet5, LeNet5Modern, map_losses
from pipelines.reader import ChequeReader
from pipelines.recognition import NUM_FEATURES
from pipelines.train_reader import (
    CHEQUE_JOB,
    FIELD_JOB,
    IGNORE,
    Candidates,
    arc_labels,
    candidate_accuracy,
    fine_tune_recognizer,
    fit_segment_scorer,
    label_boxes,
    main,
    recognizer_loss,
    segmented_set,
)

# Two labelled characters side by side, '1' and '2', and a '.' after them.
CHAR_BOXES = [(0, 0, 10, 20), (12, 0, 10, 20), (24, 16, 4, 4)]
CHARS = ["1", "2", "."]


def test_labels_take_the_best_fit_and_leave_near_misses_out() -> None:
    boxes = [
        (0, 0, 10, 20),   # the '1' exactly: the best fit (IoU 1)
        (0, 1, 10, 19),   # the '1' less a row: IoU 0.95, within the positive band
        (0, 0, 10, 16),   # IoU 0.8: a near miss, left out
        (0, 0, 10, 11),   # the top half, IoU 0.55: matches, but a fragment, so rubbish
        (0, 0, 22, 20),   # both digits: holds another character, rubbish
        (12, 2, 10, 16),  # the '2''s only candidate, IoU 0.8: its best fit, so positive
        (25, 17, 2, 2),   # inside the '.' box (its grey edges): the '.''s best fit
        (50, 0, 5, 5),    # nothing there
    ]
    one, two, dot = class_index("1"), class_index("2"), class_index(".")
    assert label_boxes(boxes, CHAR_BOXES, CHARS) == [
        one, one, IGNORE, RUBBISH, RUBBISH, two, dot, RUBBISH]
    assert label_boxes(boxes, [], []) == [RUBBISH] * len(boxes)


def test_raised_digits_take_their_digits_class() -> None:
    assert label_boxes([(0, 0, 10, 20)], [(0, 0, 10, 20)], ["⁵"]) == [class_index("5")]


@pytest.mark.parametrize("arch", [LeNet5, LeNet5Modern])
def test_recognizer_loss_weights_rubbish(arch) -> None:
    torch.manual_seed(0)
    model = arch()
    penalties = model(torch.randn(6, 1, 32, 32))
    targets = torch.tensor([0, RUBBISH, 3, RUBBISH, 5, 7])
    if arch is LeNet5:
        per = map_losses(penalties, targets)
    else:
        per = penalties[torch.arange(6), targets]
    weight = torch.tensor([1.0, 0.25, 1.0, 0.25, 1.0, 1.0])
    expected = (per * weight).sum() / weight.sum()
    got = recognizer_loss(model, penalties, targets, rubbish_weight=0.25)
    assert torch.allclose(got, expected)
    assert torch.allclose(recognizer_loss(model, penalties, targets), per.mean())


def _toy_candidates(n: int = 96) -> Candidates:
    """Rubbish is a blank input, '1' a vertical bar, '7' a bar with a top stroke; a quarter of
    the rows are IGNORE, all ink."""
    gen = torch.Generator().manual_seed(1)
    x = torch.full((n, 1, 32, 32), -0.1)
    labels = torch.tensor([RUBBISH, class_index("1"), class_index("7"), IGNORE] * (n // 4))
    x[labels == class_index("1"), 0, 6:26, 15:17] = 1.175
    x[labels == class_index("7"), 0, 6:26, 15:17] = 1.175
    x[labels == class_index("7"), 0, 6:8, 8:17] = 1.175
    x[labels == IGNORE] = 1.175
    x = x + 0.05 * torch.randn(x.shape, generator=gen)
    features = torch.randn(n, NUM_FEATURES, generator=gen)
    return Candidates(x.half(), features, labels, torch.arange(n) // 8)


def test_fine_tuning_lowers_the_loss_and_learns_the_candidates() -> None:
    torch.manual_seed(0)
    reader = ChequeReader(LeNet5Modern())
    cands = _toy_candidates()
    losses = fine_tune_recognizer(reader, cands, epochs=10, lr=3e-3, seed=0, batch_size=16)
    assert losses[-1] < 0.5 * losses[0]
    true, rubbish = candidate_accuracy(reader, cands)
    assert true == 1.0 and rubbish == 1.0


def test_each_pass_draws_every_true_character_and_a_share_of_the_rubbish() -> None:
    cands = _toy_candidates(400)
    reader = ChequeReader(LeNet5Modern())
    seen = {"ink": 0, "blank": 0}

    def count(module, args):  # rubbish candidates are the blank inputs
        blank = args[0].amax((1, 2, 3)) < 0.5
        seen["blank"] += int(blank.sum())
        seen["ink"] += int((~blank).sum())

    reader.recognizer.register_forward_pre_hook(count)
    fine_tune_recognizer(reader, cands, epochs=2, lr=1e-3, seed=0, batch_size=50,
                         rubbish_share=0.25)
    assert seen["ink"] == 2 * 200  # the '1's and '7's, twice
    assert 2 * 100 * 0.1 < seen["blank"] < 2 * 100 * 0.45


def test_the_wide_net_learns_the_candidates_from_shifted_batches() -> None:
    from pipelines.recognizer import build_model

    torch.manual_seed(0)
    reader = ChequeReader(build_model("cnn-wide"))
    cands = _toy_candidates()
    losses = fine_tune_recognizer(reader, cands, epochs=8, lr=3e-3, seed=0, batch_size=16,
                                  shift=True, rubbish_share=0.5)
    assert losses[-1] < 0.5 * losses[0]
    true, rubbish = candidate_accuracy(reader, cands)
    assert true == 1.0 and rubbish == 1.0


def test_a_new_recognizer_reads_with_the_heads_of_another_reader(tmp_path) -> None:
    from pipelines.reader import TRAINED_READER_WEIGHTS, load_reader

    heads = TRAINED_READER_WEIGHTS.with_name("reader-isolated.pt")
    out = tmp_path / "wide.pt"
    assert main(["--arch", "cnn-wide", "--heads", str(heads), "--n", "3", "--cheques", "1",
                 "--val", "0", "--epochs", "1", "--workers", "1", "--out", str(out)]) == 0
    made, given = load_reader(out), load_reader(heads)
    assert made.recognizer.arch == "cnn-wide"
    mine = made.state_dict()
    for k, v in given.state_dict().items():
        if not k.startswith("recognizer."):
            assert torch.equal(v, mine[k]), k
    assert main(["--arch", "cnn-wide", "--heads", str(heads), "--heads-member", "2",
                 "--out", str(tmp_path / "x.pt")]) == 2  # one reader only
    assert not (tmp_path / "x.pt").exists()


def test_ignored_candidates_train_nothing() -> None:
    cands = _toy_candidates(32)
    other = cands.inputs.clone()
    other[cands.labels == IGNORE] = -0.1
    states = []
    for inputs in (cands.inputs, other):
        torch.manual_seed(0)
        reader = ChequeReader(LeNet5Modern())
        fine_tune_recognizer(reader, Candidates(inputs, cands.features, cands.labels,
                                                cands.fields), epochs=1, lr=1e-3, seed=0,
                             batch_size=8)
        states.append(reader.recognizer.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_segment_scorer_fit_leaves_ignored_candidates_out() -> None:
    torch.manual_seed(0)
    reader = ChequeReader(LeNet5Modern())
    cands = _toy_candidates()
    nan_features = cands.features.clone()
    nan_features[cands.labels == IGNORE] = float("nan")  # would poison the fit if used
    cands = Candidates(cands.inputs, nan_features, cands.labels, cands.fields)
    loss = fit_segment_scorer(reader, cands, max_iter=20)
    assert loss == loss  # not NaN


def test_segmented_set_is_the_same_with_two_workers() -> None:
    one = segmented_set(4, seed=3, pool="fit", workers=1)
    two = segmented_set(4, seed=3, pool="fit", workers=2)
    assert torch.equal(one.inputs, two.inputs) and torch.equal(one.labels, two.labels)
    assert torch.equal(one.fields, two.fields) and torch.equal(one.features, two.features)
    assert set(one.fields.tolist()) <= {0, 1, 2, 3}
    assert one.inputs.dtype == torch.float16 and one.inputs.shape[1:] == (2, 32, 32)
    # every field's labelled characters are among its candidates' classes
    true = (one.labels != RUBBISH) & (one.labels != IGNORE)
    assert 0.05 < float(true.float().mean()) < 0.6


def _true_share(labels: torch.Tensor) -> float:
    return float(((labels != RUBBISH) & (labels != IGNORE)).float().mean())


def test_cheque_candidates_are_labelled_in_the_scan() -> None:
    from pipelines.field_training import load_scorer
    from pipelines.reader import DEFAULT_READER_WEIGHTS

    scorer = load_scorer(DEFAULT_READER_WEIGHTS.with_name("field_scorer.pt"))
    cands = segmented_set(3, seed=5, pool="fit", job=CHEQUE_JOB, field_scorer=scorer)
    # the amount's characters are found among the proposed fields' candidates
    assert 0.05 < _true_share(cands.labels) < 0.6
    assert set(cands.fields.tolist()) <= {0, 1, 2}


def test_labels_of_an_enlarged_field_are_taken_back_to_its_pixels() -> None:
    import cv2

    from pipelines.make_cheques import make_sample
    from pipelines.preparation import MIN_FIELD_HEIGHT, prepare

    image, sample = make_sample(dict(FIELD_JOB, seed=1, pool="fit"), 0)
    k = (MIN_FIELD_HEIGHT - 8) / image.shape[0]  # too low a field: the reader enlarges it
    small = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    boxes = [tuple(round(v * k) for v in c.box) for c in sample.chars]
    prep = prepare(small, is_field=True)
    assert prep.to_scan is not None  # read enlarged
    labels = arc_labels(prep, boxes, [c.char for c in sample.chars])
    assert _true_share(labels) > 0.05


def test_joined_candidates_number_their_images_on() -> None:
    a, b = _toy_candidates(), _toy_candidates()
    both = Candidates.joined([a, b])
    assert len(both.labels) == len(a.labels) + len(b.labels)
    assert torch.equal(both.fields[: len(a.fields)], a.fields)
    assert int(both.fields[len(a.fields):].min()) == int(a.fields.max()) + 1


@pytest.mark.parametrize("bad", [["--rubbish-weight", "0"], ["--rubbish-weight", "1.5"],
                                 ["--lr", "0"], ["--rubbish-share", "0"]])
def test_cli_refuses_bad_settings(bad, tmp_path, capsys) -> None:
    assert main([*bad, "--out", str(tmp_path / "r.pt")]) == 2
    assert "train reader:" in capsys.readouterr().err
    assert not (tmp_path / "r.pt").exists()
