"""Automatic initial step (Hairer, Nørsett & Wanner I, II.4 "Starting step size"), per trajectory."""

from __future__ import annotations

import torch


def rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square over the state dimension: SciML's default internal norm. (B, n) → (B,)."""
    return x.pow(2).mean(dim=-1).sqrt()


@torch.no_grad()
def initial_dt(
    rhs, t0, y0, f0, order: int, reltol: float, abstol: float, direction: float, span: float, dtmax: float, seg
):
    """|dt| (B,) for the first step; costs one right-hand-side evaluation (f0 is given)."""
    sc = abstol + y0.abs() * reltol
    d0, d1 = rms(y0 / sc), rms(f0 / sc)
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1)
    h0 = h0.clamp(max=min(span, dtmax))
    y1 = y0 + (direction * h0)[:, None] * f0
    f1 = rhs(t0 + direction * h0, y1, seg)
    d2 = rms((f1 - f0) / sc) / h0
    dmax = torch.maximum(d1, d2)
    h1 = torch.where(dmax <= 1e-15, torch.clamp(h0 * 1e-3, min=1e-6), (0.01 / dmax).pow(1.0 / (order + 1)))
    h = torch.minimum(100 * h0, h1).clamp(max=min(span, dtmax))
    return torch.where(torch.isfinite(h) & (h > 0), h, torch.full_like(h, 1e-6))
