"""Mixtures of readers: the sum rule over the members' amount posteriors, their weights files
and the command that makes them."""

from pathlib import Path

import pytest
import torch

from pipelines.reader import (
    TRAINED_READER_WEIGHTS,
    ChequeReader,
    Reading,
    ReaderMixture,
    decode_batch,
    load_reader,
    load_trainable_reader,
    mixture_readings,
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


def test_a_mixture_of_a_reader_with_itself_reads_as_the_reader(trained, monkeypatch):
    from pipelines import reader as reader_module
    from pipelines.images import load_gray
    from pipelines.preparation import prepare

    monkeypatch.setattr(reader_module, "ASK_OTHERS_BELOW", 1.1)  # mix every reading
    prep = prepare(load_gray(SAMPLE), field_scorer=trained.field_proposer)
    alone = decode_batch(trained, [prep], "us")[0]
    both = decode_batch(ReaderMixture([trained, trained]), [prep], "us")[0]
    assert (both.amount, both.text, both.field_box) == (alone.amount, alone.text, alone.field_box)
    assert both.confidence == pytest.approx(alone.confidence, abs=1e-9)


def test_the_mixture_confidence_is_the_mean_of_the_members_posteriors(trained, monkeypatch):
    """Against each member's posterior of the amount read, from its own graphs (the second
    reader asked however sure the first is)."""
    import gtn
    from pipelines import reader as reader_module
    from pipelines.images import load_gray
    from pipelines.preparation import prepare

    monkeypatch.setattr(reader_module, "ASK_OTHERS_BELOW", 1.1)
    isolated = load_reader(WEIGHTS / "reader-isolated.pt")
    mixture = ReaderMixture([trained, isolated])
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
        raise AssertionError("the second reader was asked")


def test_the_other_readers_are_asked_only_where_the_first_is_unsure(trained, monkeypatch):
    from pipelines import reader as reader_module
    from pipelines.images import load_gray
    from pipelines.preparation import prepare

    isolated = load_reader(WEIGHTS / "reader-isolated.pt")
    refuses = Refuses(isolated.recognizer)
    refuses.load_state_dict(isolated.state_dict())
    mixture = ReaderMixture([trained, refuses.eval()])
    prep = prepare(load_gray(SAMPLE), field_scorer=mixture.field_proposer)
    alone = decode_batch(trained, [prep], "us")[0]
    monkeypatch.setattr(reader_module, "ASK_OTHERS_BELOW", alone.confidence - 1e-6)
    sure = decode_batch(mixture, [prep], "us")[0]  # the first reader is sure: its reading
    assert (sure.amount, sure.confidence) == (alone.amount, alone.confidence)
    monkeypatch.setattr(reader_module, "ASK_OTHERS_BELOW", alone.confidence + 1e-6)
    with pytest.raises(AssertionError, match="second reader was asked"):
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
        save_mixture([TRAINED_READER_WEIGHTS, out], tmp_path / "again.pt")


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
