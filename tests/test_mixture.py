"""Mixtures of readers: the sum rule over the members' amount posteriors, their weights files
and the command that makes them."""

from pathlib import Path

import pytest
import torch

from pipelines.reader import (
    TRAINED_READER_WEIGHTS,
    ChequeReader,
    ReaderMixture,
    Reading,
    decode_batch,
    first_readers,
    load_reader,
    load_trainable_reader,
    mixture_readings,
    read_cheque,
    save_mixture,
)

WEIGHTS = TRAINED_READER_WEIGHTS.parent
SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "00004.png"


def member(amounts, confidences, table):
    """A member's `_best_readings`: its best amount and confidence for each image, and the
    posterior of any amount from `table` {(image, amount): posterior} (absent: 0)."""
    readings = [Reading(a, None if a is None else f"text {a}", c, False, None)
                for a, c in zip(amounts, confidences)]

    def log_posteriors(pairs):
        return [float(torch.tensor(table.get(p, 0.0)).log()) for p in pairs]

    return readings, log_posteriors


def brute_force(members, i):
    """The best amount and its mean posterior, each member's posterior asked one at a time (a
    member without a path counts 0)."""
    amounts = sorted({a for readings, _ in members for a in [readings[i].amount] if a})
    def mean(a):
        total = 0.0
        for readings, log_posteriors in members:
            if readings[i].amount is not None:
                total += float(torch.tensor(log_posteriors([(i, a)])[0]).exp())
        return total / len(members)
    return max(((mean(a), a) for a in amounts), default=(0.0, None))


def test_the_mixture_reads_the_amount_with_the_highest_mean_posterior():
    a = member(["12", "5", "7"], [0.6, 0.9, 0.55],
               {(0, "12"): 0.6, (0, "17"): 0.3, (1, "5"): 0.9, (1, "8"): 0.05,
                (2, "7"): 0.55})
    b = member(["17", "8", None], [0.9, 0.6, 0.0],
               {(0, "17"): 0.9, (0, "12"): 0.05, (1, "8"): 0.6, (1, "5"): 0.3})
    out = mixture_readings([a, b], reject_below=0.5)
    # image 0: 12 -> (0.6 + 0.05) / 2, 17 -> (0.3 + 0.9) / 2; b's reading is taken
    assert (out[0].amount, out[0].text) == ("17", "text 17")
    assert out[0].confidence == pytest.approx(0.6) and not out[0].rejected
    # image 1: 5 -> (0.9 + 0.3) / 2 beats 8 -> (0.05 + 0.6) / 2
    assert out[1].amount == "5" and out[1].confidence == pytest.approx(0.6)
    # image 2: b has no path and gives every amount 0: a confident 7 is halved, and rejected
    assert out[2].amount == "7" and out[2].confidence == pytest.approx(0.275)
    assert out[2].rejected
    for i in range(3):
        conf, amount = brute_force([a, b], i)
        assert (out[i].amount, out[i].confidence) == (amount, pytest.approx(conf))


def test_a_mixture_without_any_path_rejects_and_ties_go_to_the_first_member():
    a = member([None, "3"], [0.0, 0.5], {(1, "3"): 0.5, (1, "4"): 0.5})
    b = member([None, "4"], [0.0, 0.5], {(1, "4"): 0.5, (1, "3"): 0.5})
    out = mixture_readings([a, b])
    assert out[0].amount is None and out[0].rejected
    assert out[1].amount == "3" and out[1].confidence == pytest.approx(0.5)


@pytest.fixture(scope="module")
def trained():
    return load_trainable_reader()


def test_a_mixture_of_a_reader_with_itself_reads_as_the_reader(trained):
    from pipelines.images import load_gray
    from pipelines.preparation import prepare

    prep = prepare(load_gray(SAMPLE), field_scorer=trained.field_proposer)
    alone = decode_batch(trained, [prep], "us")[0]
    both = decode_batch(ReaderMixture([trained, trained], [1.1]), [prep], "us")[0]  # both read
    assert (both.amount, both.text, both.field_box) == (alone.amount, alone.text, alone.field_box)
    assert both.confidence == pytest.approx(alone.confidence, abs=1e-9)


def test_the_mixture_confidence_is_the_mean_of_the_members_posteriors(trained):
    """Against each member's posterior of the amount read, from its own graphs (the second
    reader asked however sure the first is)."""
    import gtn
    from pipelines.images import load_gray
    from pipelines.preparation import prepare

    isolated = load_reader(WEIGHTS / "reader-isolated.pt")
    mixture = ReaderMixture([trained, isolated], [1.1])
    prep = prepare(load_gray(SAMPLE), field_scorer=mixture.field_proposer)
    read = decode_batch(mixture, [prep], "us")[0]
    posteriors = []
    for m in (trained, isolated):
        with torch.no_grad():
            interp = m.interpretation_graphs([prep])
            whole = gtn.forward_score(m.amount_graphs([prep], "us"))
            paths = gtn.forward_score(m.constrained_graphs(interp, "us", [read.amount]))
        posteriors.append(float((paths - whole).exp()))
    assert read.confidence == pytest.approx(sum(posteriors) / 2, rel=1e-6)


class Refuses(ChequeReader):
    """A reader that fails the test if it is asked to read."""

    def interpretation_graphs(self, batch):
        raise AssertionError("a reader that must not read was asked")


def test_the_other_readers_are_asked_only_where_the_first_is_unsure(trained):
    from pipelines.images import load_gray
    from pipelines.preparation import prepare

    isolated = load_reader(WEIGHTS / "reader-isolated.pt")
    refuses = Refuses(isolated.recognizer)
    refuses.load_state_dict(isolated.state_dict())
    mixture = ReaderMixture([trained, refuses.eval()])
    prep = prepare(load_gray(SAMPLE), field_scorer=mixture.field_proposer)
    alone = decode_batch(trained, [prep], "us")[0]
    mixture.ask_below = (alone.confidence - 1e-6,)
    sure = decode_batch(mixture, [prep], "us")[0]  # the first reader is sure: its reading
    assert (sure.amount, sure.confidence) == (alone.amount, alone.confidence)
    mixture.ask_below = (alone.confidence + 1e-6,)
    with pytest.raises(AssertionError, match="must not read was asked"):
        decode_batch(mixture, [prep], "us")


def test_mixture_weights_round_trip_and_refuse_to_train(tmp_path, trained):
    out = tmp_path / "mix.pt"
    save_mixture([TRAINED_READER_WEIGHTS, WEIGHTS / "reader-isolated.pt"], out)
    mixture = load_reader(out)
    assert isinstance(mixture, ReaderMixture) and len(mixture.members) == 2
    for k, v in trained.state_dict().items():
        assert torch.equal(v, mixture.members[0].state_dict()[k]), k
    with pytest.raises(ValueError, match="mixture of readers"):
        load_trainable_reader(out)
    with pytest.raises(ValueError, match="not a whole reader"):
        save_mixture([TRAINED_READER_WEIGHTS, WEIGHTS / "lenet5.pt"], tmp_path / "again.pt")


def test_a_mixture_given_to_a_mixture_adds_its_readers_in_order(tmp_path, trained):
    two = tmp_path / "two.pt"
    save_mixture([TRAINED_READER_WEIGHTS, WEIGHTS / "reader-isolated.pt"], two)
    assert load_reader(two).ask_below == (0.95,)  # the default
    three = tmp_path / "three.pt"
    save_mixture([WEIGHTS / "reader-isolated.pt", two], three, ask_below=[0.9, 0.5])
    mixture = load_reader(three)
    assert mixture.ask_below == (0.9, 0.5)
    isolated = load_reader(WEIGHTS / "reader-isolated.pt")
    for got, want in zip(mixture.members, (isolated, trained, isolated)):
        for k, v in want.state_dict().items():
            assert torch.equal(v, got.state_dict()[k]), k
    with pytest.raises(ValueError, match="needs 2 confidences"):
        save_mixture([WEIGHTS / "reader-isolated.pt", two], tmp_path / "x.pt", ask_below=[0.9])
    with pytest.raises(ValueError, match="needs 2 confidences"):
        ReaderMixture(mixture.members, [0.9, -0.1])
    assert not (tmp_path / "x.pt").exists()


def test_a_later_reader_is_asked_only_where_the_readers_before_it_are_unsure(trained):
    """The third reader of a cascade reads only below its threshold on the first two's mixed
    confidence; asked always, the cascade reads as the pooled readings of all three."""
    from pipelines.images import load_gray
    from pipelines.preparation import prepare
    from pipelines.reader import pooled_readings

    isolated = load_reader(WEIGHTS / "reader-isolated.pt")
    refuses = Refuses(isolated.recognizer)
    refuses.load_state_dict(isolated.state_dict())
    prep = prepare(load_gray(SAMPLE), field_scorer=trained.field_proposer)
    two = decode_batch(ReaderMixture([trained, isolated], [1.1]), [prep], "us")[0]
    cascade = ReaderMixture([trained, isolated, refuses.eval()], [1.1, two.confidence - 1e-6])
    sure = decode_batch(cascade, [prep], "us")[0]
    assert (sure.amount, sure.confidence) == (two.amount, two.confidence)
    cascade.ask_below = (1.1, two.confidence + 1e-6)
    with pytest.raises(AssertionError, match="must not read was asked"):
        decode_batch(cascade, [prep], "us")
    three = ReaderMixture([trained, isolated, trained], [1.1, 1.1])
    read = decode_batch(three, [prep], "us")[0]
    (_, pooled), = pooled_readings(three, [[prep]], "us")
    assert (read.amount, read.text) == (pooled.amount, pooled.text)
    assert read.confidence == pytest.approx(pooled.confidence, abs=1e-12)


def test_readers_with_other_field_proposers_do_not_mix(trained):
    other = ChequeReader(load_reader(WEIGHTS / "reader-isolated.pt").recognizer)
    with torch.no_grad():
        for p in other.field_proposer.parameters():
            p.add_(0.1)
    with pytest.raises(ValueError, match="field proposer"):
        ReaderMixture([trained, other])
    with pytest.raises(ValueError, match="at least two"):
        ReaderMixture([trained])


def test_train_mixture_command(tmp_path):
    from pipelines.train import main

    out = tmp_path / "m.pt"
    assert main(["mixture", str(TRAINED_READER_WEIGHTS), str(WEIGHTS / "reader-isolated.pt"),
                 "--out", str(out)]) == 0
    assert isinstance(load_reader(out), ReaderMixture)
    copy = tmp_path / "r.pt"
    copy.write_bytes(TRAINED_READER_WEIGHTS.read_bytes())
    before = copy.read_bytes()
    assert main(["mixture", str(copy), str(WEIGHTS / "reader-isolated.pt"),
                 "--out", str(copy)]) == 2  # would overwrite one of its readers
    assert copy.read_bytes() == before
    assert main(["mixture", str(copy), "--out", str(tmp_path / "one.pt")]) == 2
    assert not (tmp_path / "one.pt").exists()
    three = tmp_path / "m3.pt"
    assert main(["mixture", str(out), str(copy), "--ask-below", "0.95", "0.7",
                 "--out", str(three)]) == 0
    assert load_reader(three).ask_below == (0.95, 0.7)
    assert main(["mixture", str(out), str(copy), "--ask-below", "0.7",
                 "--out", str(tmp_path / "m4.pt")]) == 2  # one confidence for two readers
    assert not (tmp_path / "m4.pt").exists()
    assert main(["mixture", str(copy), str(tmp_path / "missing.pt"),
                 "--out", str(tmp_path / "x.pt")]) == 2
    assert not (tmp_path / "x.pt").exists()


def test_training_refuses_a_mixture(tmp_path):
    from pipelines.train_global import main

    save_mixture([TRAINED_READER_WEIGHTS, WEIGHTS / "reader-isolated.pt"], tmp_path / "mix.pt")
    labels = tmp_path / "data.csv"
    labels.write_text(f"{SAMPLE},240.47\n")
    assert main(["--data", str(labels), "--init", str(tmp_path / "mix.pt"),
                 "--out", str(tmp_path / "out.pt"), "--epochs", "1"]) == 2
    assert not (tmp_path / "out.pt").exists()


def test_the_first_readers_of_a_mixture_read_as_a_mixture_made_of_them_alone(tmp_path):
    """`first_readers` against mixture files saved from those readers only (asked below the
    same confidences), read with every look."""
    isolated = WEIGHTS / "reader-isolated.pt"
    save_mixture([TRAINED_READER_WEIGHTS, isolated, TRAINED_READER_WEIGHTS], tmp_path / "3.pt",
                 ask_below=[1.1, 0.5])
    save_mixture([TRAINED_READER_WEIGHTS, isolated], tmp_path / "2.pt", ask_below=[1.1])
    mixture = load_reader(tmp_path / "3.pt")
    for count, alone in ((1, load_reader(TRAINED_READER_WEIGHTS)),
                         (2, load_reader(tmp_path / "2.pt")), (3, mixture)):
        got = read_cheque(SAMPLE, first_readers(mixture, count), zoom_below=1.0)
        want = read_cheque(SAMPLE, alone, zoom_below=1.0)
        assert (got.amount, got.text) == (want.amount, want.text), count
        assert got.confidence == pytest.approx(want.confidence, abs=1e-6), count
    assert first_readers(mixture, 3) is mixture
    assert first_readers(mixture, 2).ask_below == (1.1,)
    for bad in (0, 4):
        with pytest.raises(ValueError, match=r"hold 3 readers: .* within 1\.\.3, got " + str(bad)):
            first_readers(mixture, bad)
    lone = load_reader(TRAINED_READER_WEIGHTS)
    assert first_readers(lone, 1) is lone
    with pytest.raises(ValueError, match=r"hold 1 reader: .* within 1\.\.1, got 2"):
        first_readers(lone, 2)
