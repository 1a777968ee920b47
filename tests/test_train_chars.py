"""Character training: a tiny run lowers the loss; the CLI trains and checkpoints in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipelines.chardata import build_chars
from pipelines.charimage import ink_to_input
from pipelines.lenet import loss_for
from pipelines.mnist import load_mnist, mnist_dir
from pipelines.recognizer import build_model, load_recognizer
from pipelines.train_chars import main

needs_mnist = pytest.mark.skipif(not (mnist_dir() / "train-images-idx3-ubyte.gz").is_file(),
                                 reason=f"MNIST not found in {mnist_dir()} (set MNIST_DIR)")


@needs_mnist
@pytest.mark.parametrize("arch", ["lenet5", "lenet5-modern"])
def test_a_few_steps_lower_the_loss(arch: str) -> None:
    torch.manual_seed(0)
    mnist = load_mnist("train")
    data = build_chars(mnist.images[:300], mnist.labels[:300], 10, 30, seed=0)
    x = ink_to_input(data.images[:, None].float() / 255)
    model = build_model(arch)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.eval()
    with torch.no_grad():
        before = float(loss_for(model, model(x), data.labels))
    model.train()
    for _ in range(15):
        for i in range(0, len(x), 64):
            loss = loss_for(model, model(x[i : i + 64]), data.labels[i : i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        after = float(loss_for(model, model(x), data.labels))
    assert after < 0.8 * before


@needs_mnist
def test_cli_trains_and_writes_a_plain_checkpoint(tmp_path: Path, capsys) -> None:
    out = tmp_path / "tiny.pt"
    argv = ["--arch", "lenet5", "--epochs", "1", "--limit", "200", "--distort", "--seed", "3",
            "--out", str(out)]
    assert main(argv) == 0
    assert "MNIST test error" in capsys.readouterr().out
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["arch"] == "lenet5" and len(ckpt["classes"]) == 17
    assert ckpt["config"]["seed"] == 3 and ckpt["parameters"] == 60000
    assert load_recognizer(out).arch == "lenet5"
    # reproducible: same seed, same weights
    out2 = tmp_path / "tiny2.pt"
    assert main([*argv[:-1], str(out2)]) == 0
    w1, w2 = ckpt["state_dict"], torch.load(out2, weights_only=True)["state_dict"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_cli_reports_missing_mnist(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "nowhere"))
    assert main(["--limit", "10", "--epochs", "1", "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert "MNIST folder" in err and "Traceback" not in err


def test_cli_rejects_unknown_arch(capsys) -> None:
    assert main(["--arch", "lenet6"]) == 2
    assert "lenet5-modern" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["bogus", "cuda:x"])
def test_cli_rejects_a_device_torch_does_not_know(device: str, tmp_path: Path, capsys) -> None:
    assert main(["--device", device, "--limit", "10", "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--device" in err and "\n" not in err and not (tmp_path / "x.pt").exists()
