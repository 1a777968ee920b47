"""Build recognizers by name and load trained ones from checkpoints.

Every model maps (N, 1, 32, 32) normalised characters (`charimage.to_lenet_input`) to (N, 17)
penalties, lower is better, differentiable; the graph layers use score = -penalty. The faithful
net's penalties are its RBF distances, the modern net's -log_softmax. `model.arch` names it.
`cnn-context` reads (N, 2, 32, 32): each character and the ink around it
(`lenet.input_channels`, `Prepared.inputs`).

A checkpoint is a dict of plain values, loadable with `torch.load(path, weights_only=True)`:
`{"arch": str, "state_dict": {name: tensor}, "config": {...}, "classes": [str], "parameters": int,
"metrics": {...}}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipelines.charset import CLASSES
from pipelines.lenet import ContextCNN, LeNet5, LeNet5Modern, WideCNN, count_parameters

ARCHS: dict[str, type[nn.Module]] = {"lenet5": LeNet5, "lenet5-modern": LeNet5Modern,
                                     "cnn-wide": WideCNN, "cnn-context": ContextCNN}
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "lenet5.pt"


def build_model(arch: str) -> nn.Module:
    """A freshly initialised recognizer; ValueError naming the allowed architectures."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHS)}")
    return ARCHS[arch]()


def checkpoint_dict(model: nn.Module, config: dict[str, Any],
                    metrics: dict[str, float] | None = None) -> dict[str, Any]:
    """The plain-value checkpoint of `model` (tensors moved to the CPU)."""
    return {
        "arch": str(model.arch),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "config": dict(config),
        "classes": list(CLASSES),
        "parameters": count_parameters(model),
        "metrics": dict(metrics or {}),
    }


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict at `path`; ValueError naming the path when it is missing or bad."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"recognizer weights {path} do not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"recognizer weights {path} are corrupt or not a checkpoint: {first}") from None
    if not isinstance(ckpt, dict) or not {"arch", "state_dict"} <= ckpt.keys():
        raise ValueError(f"recognizer weights {path} are not a checkpoint dict with 'arch' and "
                         f"'state_dict'")
    if list(ckpt.get("classes", CLASSES)) != list(CLASSES):
        raise ValueError(f"recognizer weights {path} were trained for classes "
                         f"{ckpt.get('classes')}, not {list(CLASSES)}")
    return ckpt


def load_recognizer(path: str | Path | None = None,
                    device: str | torch.device = "cpu") -> nn.Module:
    """A trained recognizer in eval mode on `device` (default: the shipped `DEFAULT_WEIGHTS`)."""
    path = DEFAULT_WEIGHTS if path is None else Path(path)
    ckpt = read_checkpoint(path)
    try:
        model = build_model(str(ckpt["arch"]))
        model.load_state_dict(ckpt["state_dict"])
    except (ValueError, RuntimeError, TypeError) as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(
            f"recognizer weights {path} do not fit their architecture: {first}") from None
    return model.to(device).eval()
