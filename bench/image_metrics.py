"""Image quality metrics for the benchmark: PSNR and SSIM on RGB images in [-1, 1] (plain torch)."""
from __future__ import annotations

import torch


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB over the whole batch (data range 2); inf when identical."""
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(4.0 / mse)).item()


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-coords**2 / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean structural similarity (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03)."""
    a, b = a.double(), b.double()
    channels = a.shape[1]
    window = _gaussian_window().expand(channels, 1, -1, -1)
    conv = lambda x: torch.nn.functional.conv2d(x, window, groups=channels)  # noqa: E731  (valid region only)
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2  # data range 2
    mu_a, mu_b = conv(a), conv(b)
    var_a = conv(a * a) - mu_a**2
    var_b = conv(b * b) - mu_b**2
    cov = conv(a * b) - mu_a * mu_b
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return index.mean().item()
