"""Global training: the criteria by hand, a short run lowers the loss, resume, and DDP."""

from __future__ import annotations

import math
import time

import pytest
import torch

import gtn
from pipelines.train_global import GlobalConfig, GlobalLoss, criterion_loss


@pytest.fixture(autouse=True)
def one_thread():
    """Two intra-op threads on a loaded 2-core machine run 10x slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Two steps, two labels each: paths aa=1.5, ab=0, ba=2.5, bb=1 (scores, higher is better).
TWO_STEPS = "0\n2\n0 1 0 0 1.0\n0 1 1 1 2.0\n1 2 0 0 0.5\n1 2 1 1 -1.0\n"


def _graphs() -> tuple[gtn.Graph, gtn.Graph]:
    g = gtn.Graph.from_str(TWO_STEPS, dtype=torch.float64)
    g = g.replace(weight=g.weight.clone().requires_grad_(True))
    return g, gtn.compose(g, gtn.linear_graph([0, 1]))  # constrained to "a b"


def test_forward_criterion_value_and_gradient_by_hand() -> None:
    g, c = _graphs()
    loss = criterion_loss([c], [g], "forward")
    paths = {"aa": 1.5, "ab": 0.0, "ba": 2.5, "bb": 1.0}
    z = math.log(sum(math.exp(v) for v in paths.values()))
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx(z - 0.0)
    loss.sum().backward()
    p = {k: math.exp(v - z) for k, v in paths.items()}
    # d/dw = posterior of the arc in the full graph - posterior in the constrained graph
    want = [p["aa"] + p["ab"] - 1, p["ba"] + p["bb"], p["aa"] + p["ba"], p["ab"] + p["bb"] - 1]
    assert g.weight.grad.tolist() == pytest.approx(want)


def test_viterbi_criteria_by_hand() -> None:
    g, c = _graphs()
    loss = criterion_loss([c], [g], "discriminative-viterbi")
    assert loss.item() == pytest.approx(2.5)  # best "ba" minus correct "ab"
    loss.sum().backward()
    assert g.weight.grad.tolist() == pytest.approx([-1, 1, 1, -1])
    g, c = _graphs()
    loss = criterion_loss([c], [g], "viterbi")
    assert loss.item() == pytest.approx(0.0)
    loss.sum().backward()
    assert g.weight.grad.tolist() == pytest.approx([-1, 0, 0, -1])
    with pytest.raises(ValueError, match="forward, discriminative-viterbi, viterbi"):
        criterion_loss([c], [g], "mmi")


def _tiny_fields(n: int):
    pytest.importorskip("cv2")
    from pipelines.cheques import generate_cheques
    from pipelines.datasets import Example

    try:
        samples = list(generate_cheques(n, 3, "train", fields_only=True))
    except (ValueError, FileNotFoundError) as err:  # no MNIST here
        pytest.skip(str(err))
    return [Example(f"mem:{i}", s.amount, s.grammar, image=s.image)
            for i, s in enumerate(samples)]


def test_short_global_run_lowers_the_loss() -> None:
    from pipelines.preparation import prepare
    from pipelines.reader import ChequeReader
    from pipelines.recognizer import load_recognizer
    from pipelines.train_global import make_optimizer

    torch.manual_seed(0)
    examples = _tiny_fields(6)
    preps = [prepare(e.load(), is_field=True) for e in examples]
    reader = ChequeReader(load_recognizer(None))
    model = GlobalLoss(reader).train()
    assert not reader.recognizer.training  # frozen batch norm / no dropout by default
    opt = make_optimizer(reader, GlobalConfig(lr=3e-4, lr_head=1e-2))
    args = (preps, [e.amount for e in examples], [e.grammar for e in examples])
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss, missed = model(*args)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert missed == 0
    assert losses[-1] < 0.8 * losses[0], losses


def _train(examples, epochs: int, ckpt=None, resume=None,
           schedule: str = "constant") -> dict[str, torch.Tensor]:
    from pipelines.reader import ChequeReader
    from pipelines.recognizer import load_recognizer
    from pipelines.train_global import train_global

    torch.manual_seed(0)
    reader = ChequeReader(load_recognizer(None))
    cfg = GlobalConfig(epochs=epochs, batch_size=2, val_frac=0.0, is_field=True, lr_head=1e-2,
                       lr_schedule=schedule)
    train_global(reader, examples, cfg, checkpoint=ckpt, resume=resume, log=lambda m: None)
    return reader.state_dict()


def test_checkpoint_resume_is_reproducible(tmp_path) -> None:
    examples = _tiny_fields(4)
    straight = _train(examples, 2)
    _train(examples, 1, ckpt=tmp_path / "c.pt")
    ck = torch.load(tmp_path / "c.pt", weights_only=True)
    assert ck["epoch"] == 1 and {"reader", "optimizer", "rng", "config"} <= ck.keys()
    resumed = _train(examples, 2, resume=tmp_path / "c.pt")
    for k, v in straight.items():
        assert torch.equal(v, resumed[k]), k


def test_cosine_schedule_decays_both_rates_to_zero(tmp_path) -> None:
    from pipelines.train_global import lr_factor

    total = 10
    factors = [lr_factor("cosine", s, total) for s in range(total + 1)]
    assert factors[0] == 1.0 and abs(factors[-1]) < 1e-12
    assert all(a > b for a, b in zip(factors, factors[1:]))
    assert abs(factors[total // 2] - 0.5) < 1e-12
    assert lr_factor("constant", 7, total) == 1.0
    with pytest.raises(ValueError, match="schedule"):
        GlobalConfig(lr_schedule="step")
    # 4 fields, batch 2: 2 steps an epoch, 4 in all; the last step ran at factor(3 of 4).
    _train(_tiny_fields(4), 2, ckpt=tmp_path / "c.pt", schedule="cosine")
    groups = torch.load(tmp_path / "c.pt", weights_only=True)["optimizer"]["param_groups"]
    want = lr_factor("cosine", 3, 4)
    assert [g["lr"] for g in groups] == pytest.approx([1e-4 * want, 1e-2 * want])


def _ddp_worker(rank: int, world: int, init: str, examples, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        state = _train(examples, 1)
        torch.save(state, f"{out}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_two_process_ddp_ends_with_identical_weights(tmp_path) -> None:
    import torch.multiprocessing as mp

    examples = _tiny_fields(4)
    init = f"file://{tmp_path / 'rendezvous'}"
    ctx = mp.start_processes(_ddp_worker, args=(2, init, examples, str(tmp_path)), nprocs=2,
                             join=False, start_method="spawn")
    deadline = 90
    start = time.time()
    while not ctx.join(timeout=5):
        if time.time() - start > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail("DDP run timed out")
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not torch.equal(a["grammars.us.weight"], _fresh_grammar_weight())


def _fresh_grammar_weight() -> torch.Tensor:
    from pipelines.grammar import AmountGrammar

    return AmountGrammar("us").weight.detach()


def test_global_training_on_cheques_trains_the_field_scorer_not_the_proposer() -> None:
    """On whole cheques the field scorer learns from the amounts; the frozen proposer that
    chose which candidate fields training saw must stay as it was."""
    pytest.importorskip("cv2")
    from pipelines.cheques import generate_cheques
    from pipelines.datasets import Example
    from pipelines.reader import load_trainable_reader
    from pipelines.train_global import train_global

    try:
        samples = list(generate_cheques(3, 5, "train"))
    except (ValueError, FileNotFoundError) as err:  # no MNIST here
        pytest.skip(str(err))
    examples = [Example(f"mem:{i}", s.amount, s.grammar, image=s.image)
                for i, s in enumerate(samples)]
    reader = load_trainable_reader()
    proposer = {k: v.clone() for k, v in reader.field_proposer.state_dict().items()}
    scorer = {k: v.clone() for k, v in reader.field_scorer.state_dict().items()}
    cfg = GlobalConfig(epochs=1, batch_size=3, val_frac=0.0, lr_head=1e-2)
    train_global(reader, examples, cfg, log=lambda m: None)
    assert all(torch.equal(v, reader.field_proposer.state_dict()[k]) for k, v in proposer.items())
    assert not all(torch.equal(v, reader.field_scorer.state_dict()[k]) for k, v in scorer.items())


def test_training_only_raised_cents_changes_only_their_parameters() -> None:
    """`--train-only raised` trains the raised scorer and the grammars' raised-digit arcs and
    leaves every other weight of the reader as it was."""
    pytest.importorskip("cv2")
    from pipelines.cheques import generate_cheques
    from pipelines.datasets import Example
    from pipelines.reader import load_trainable_reader
    from pipelines.train_global import train_global

    try:
        samples = list(generate_cheques(4, 7, "train", fields_only=True, raised_cents=1.0))
    except (ValueError, FileNotFoundError) as err:  # no MNIST here
        pytest.skip(str(err))
    examples = [Example(f"mem:{i}", s.amount, s.grammar, image=s.image)
                for i, s in enumerate(samples)]
    reader = load_trainable_reader()
    before = {k: v.clone() for k, v in reader.state_dict().items()}
    cfg = GlobalConfig(epochs=1, batch_size=2, val_frac=0.0, is_field=True, lr_head=1e-2,
                       train_only="raised")
    train_global(reader, examples, cfg, log=lambda m: None)
    after = reader.state_dict()
    changed = {k for k, v in before.items() if not torch.equal(v, after[k])}
    assert "raised_scorer.linear.weight" in changed and "grammars.us.weight" in changed
    assert changed <= {"raised_scorer.linear.weight", "raised_scorer.linear.bias",
                       *(f"grammars.{g}.weight" for g in reader.grammars)}
    for name, g in reader.grammars.items():
        n = g.num_older_arcs
        key = f"grammars.{name}.weight"
        assert torch.equal(before[key][:n], after[key][:n])
    with pytest.raises(ValueError, match="train-only"):
        GlobalConfig(train_only="lenet")
