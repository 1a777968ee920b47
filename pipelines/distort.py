"""Batched random distortions of normalised characters, in torch (affine_grid + grid_sample).

Each image gets its own random affine map (translation, isotropic scaling, squeezing = anisotropic
scaling, horizontal shear, small rotation), as in the paper's distorted training set, plus an
elastic displacement field (after Simard et al. 2003): smooth random noise, scaled.
Both are composed into one sampling grid and applied with a single bilinear `grid_sample`.
Works on ink images (background 0, so the zero padding is background).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class DistortConfig:
    """Ranges (uniform, symmetric unless stated); sizes in pixels of the 32x32 image."""

    translate: float = 1.5  # px, each axis
    scale: float = 0.10  # log-uniform factor in [1/(1+s), 1+s]
    squeeze: float = 0.12  # x scaled by 1+u, y by 1/(1+u)
    shear: float = 0.2  # x += shear * y
    rotate: float = 6.0  # degrees
    elastic_alpha: float = 0.7  # px, typical displacement magnitude
    elastic_sigma: float = 5.0  # px, smoothing of the displacement field
    prob: float = 0.8  # fraction of images distorted; the rest pass unchanged


def _uniform(n: int, half: float, gen: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=gen, device=device) * 2 - 1) * half


_BANK: dict[tuple[int, int, float, str], torch.Tensor] = {}
BANK_SIZE = 4096


def _gaussian_blur(field: np.ndarray, sigma: float) -> np.ndarray:
    """Blur each (H, W) plane of an (N, 2, H, W) array (reflected borders)."""
    out = np.empty_like(field)
    for i in range(field.shape[0]):
        for c in range(field.shape[1]):
            out[i, c] = cv2.GaussianBlur(field[i, c], (0, 0), sigma,
                                         borderType=cv2.BORDER_REFLECT)
    return out


def smooth_field(n: int, h: int, w: int, sigma: float, gen: torch.Generator | None,
                 device: torch.device) -> torch.Tensor:
    """(n, 2, h, w) smooth random displacement fields with unit RMS per field.

    White noise blurred by a Gaussian of width `sigma` (Simard et al. 2003). To keep the CPU cost
    per batch at one gather, `BANK_SIZE` fields are made once (seeded, per size and device) and
    each call draws from them with random signs and transposition of the two components.
    """
    key = (h, w, float(sigma), str(device))
    if key not in _BANK:
        noise = np.random.default_rng(12345).uniform(-1, 1, (BANK_SIZE, 2, h, w))
        field = torch.from_numpy(_gaussian_blur(noise.astype(np.float32), sigma))
        rms = field.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-6)
        _BANK[key] = (field / rms).to(device)
    bank = _BANK[key]
    idx = torch.randint(0, BANK_SIZE, (n,), generator=gen, device=device)
    sign = torch.randint(0, 2, (n, 2, 1, 1), generator=gen, device=device) * 2 - 1
    field = bank[idx.to(bank.device)] * sign.to(bank.dtype)
    swap = torch.rand(n, generator=gen, device=device) < 0.5
    return torch.where(swap.view(n, 1, 1, 1), field.flip(1), field)


def random_affine(n: int, size: int, cfg: DistortConfig, gen: torch.Generator | None,
                  device: torch.device) -> torch.Tensor:
    """(n, 2, 3) affine matrices in `affine_grid`'s normalised coordinates (output -> input)."""
    log_s = _uniform(n, math.log1p(cfg.scale), gen, device)
    sq = _uniform(n, math.log1p(cfg.squeeze), gen, device)
    sx, sy = torch.exp(log_s + sq), torch.exp(log_s - sq)
    shear = _uniform(n, cfg.shear, gen, device)
    angle = _uniform(n, math.radians(cfg.rotate), gen, device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # forward map A = R @ Shear @ S; the grid needs its inverse (output pixel -> input pixel)
    a = torch.zeros(n, 2, 2, device=device)
    a[:, 0, 0], a[:, 0, 1] = cos * sx, (cos * shear - sin) * sy
    a[:, 1, 0], a[:, 1, 1] = sin * sx, (sin * shear + cos) * sy
    inv = torch.linalg.inv(a)
    t = _uniform(2 * n, cfg.translate * 2 / size, gen, device).view(n, 2, 1)
    return torch.cat([inv, -inv @ t], 2)


def distort(images: torch.Tensor, cfg: DistortConfig = DistortConfig(),
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Randomly distort ink images (N, 1, H, W) (background 0); returns a new (N, 1, H, W)."""
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"expected images of shape (N, 1, H, W), got {tuple(images.shape)}")
    n, _, h, w = images.shape
    dev = images.device
    theta = random_affine(n, max(h, w), cfg, generator, dev)
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    if cfg.elastic_alpha > 0:
        field = smooth_field(n, h, w, cfg.elastic_sigma, generator, dev) * cfg.elastic_alpha
        scale = torch.tensor([2.0 / w, 2.0 / h], device=dev).view(1, 2, 1, 1)
        grid = grid + (field * scale).permute(0, 2, 3, 1)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.prob < 1:
        keep = torch.rand(n, generator=generator, device=dev) >= cfg.prob
        out = torch.where(keep.view(n, 1, 1, 1), images, out)
    return out
