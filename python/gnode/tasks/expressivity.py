"""Targets of the expressivity measure: random smooth trajectories with a known number of features.

A target is a sum of K random Fourier modes per output channel,

    y*_d(t) = sum_{k=1..K} a_dk cos(w_k t) + b_dk sin(w_k t),   w_k = 2 pi k / T,   a_dk, b_dk ~ N(0, 1/K),

on t in [0, T] with T = K * tau_c: the fastest mode has period tau_c, the correlation time of the process,
so its complexity K = T / tau_c is the number of modes, half the number of its real degrees of freedom per
channel. Every mode is a whole number of periods on [0, T], so the modes are orthogonal there and the
variance of y*_d over the window is sum_k (a_dk^2 + b_dk^2) / 2 (1 on average). The samples are spaced
tau_c / samples_per_feature apart, so a longer target (larger K) is sampled as densely as a shorter one.

The exact generating ODE is known: a bank of K undamped oscillators, dz/dt = A z with
A = blockdiag([[0, -w_k], [w_k, 0]]) and z(0) = (1, 0, 1, 0, ...), read out linearly by the coefficients
(`generating_oscillator`), so a linear ODE of dimension 2K reproduces a K-mode target exactly and one of
dimension N < 2K cannot (its output has at most N exponential modes). The expressivity measure
(`gnode.expressivity`) relies on both facts for its known-answer tests.

Targets are drawn from a `torch.Generator`, in float64, deterministically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FourierTarget:
    """One target trajectory (module docstring).

    times (S,) the sample times, values (S, d_out) y* at those times, cos/sin (K, d_out) the coefficients
    a_dk, b_dk, features K, tau_c the period of the fastest mode (T = K tau_c).
    """

    times: torch.Tensor
    values: torch.Tensor
    cos: torch.Tensor
    sin: torch.Tensor
    features: int
    tau_c: float

    @property
    def duration(self) -> float:
        return self.features * self.tau_c

    @property
    def frequencies(self) -> torch.Tensor:
        """w_k = 2 pi k / T, k = 1..K."""
        k = torch.arange(1, self.features + 1, dtype=torch.float64)
        return 2 * math.pi * k / self.duration

    def variance(self) -> float:
        """Mean over channels of the variance of the samples about their mean: the MSE of the best constant,
        against which a fit is normalised."""
        return float(self.values.var(dim=0, unbiased=False).mean())

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        """y*(t) (..., d_out) at any times t (...), from the coefficients."""
        wt = torch.as_tensor(t, dtype=torch.float64)[..., None] * self.frequencies  # (..., K)
        return torch.cos(wt) @ self.cos + torch.sin(wt) @ self.sin


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def fourier_target(
    features: int,
    *,
    d_out: int = 1,
    tau_c: float = 2 * math.pi,
    samples_per_feature: int = 8,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> FourierTarget:
    """A K = `features`-mode target on [0, K tau_c] with `d_out` channels (module docstring).

    samples_per_feature: samples per tau_c (>= 4 resolves the fastest mode; the last sample sits at T).
    generator or seed: where the coefficients come from (one of them; seed=None and no generator draws
    from a fresh generator seeded 0, never from the global RNG).
    """
    _check_int("features (K)", features, 1)
    _check_int("d_out", d_out, 1)
    _check_int("samples_per_feature", samples_per_feature, 4)
    if isinstance(tau_c, bool) or not isinstance(tau_c, (int, float)) or not (0 < tau_c < math.inf):
        raise ValueError(f"tau_c must be a positive finite number, got {tau_c!r}")
    if generator is not None and seed is not None:
        raise ValueError("give fourier_target a generator or a seed, not both")
    gen = generator if generator is not None else torch.Generator().manual_seed(0 if seed is None else seed)
    scale = 1.0 / math.sqrt(features)
    a = torch.randn(features, d_out, generator=gen, dtype=torch.float64) * scale
    b = torch.randn(features, d_out, generator=gen, dtype=torch.float64) * scale
    steps = features * samples_per_feature
    times = torch.arange(steps + 1, dtype=torch.float64) * (float(tau_c) / samples_per_feature)
    target = FourierTarget(times, torch.empty(0), a, b, features, float(tau_c))
    return FourierTarget(times, target(times), a, b, features, float(tau_c))


def generating_oscillator(target: FourierTarget) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A (2K, 2K), z0 (2K,), C (d_out, 2K)) with dz/dt = A z, z(0) = z0, y*(t) = C z(t) exactly.

    Mode k is the rotation z_k(t) = R(w_k t) (1, 0): cos(w_k t) and sin(w_k t) in its two coordinates, so
    C holds the coefficients a_dk, b_dk and z0 = (1, 0, 1, 0, ...).
    """
    K = target.features
    w = target.frequencies
    A = torch.zeros(2 * K, 2 * K, dtype=torch.float64)
    idx = torch.arange(K)
    A[2 * idx + 1, 2 * idx] = w
    A[2 * idx, 2 * idx + 1] = -w
    z0 = torch.zeros(2 * K, dtype=torch.float64)
    z0[0::2] = 1.0
    C = torch.empty(target.cos.shape[1], 2 * K, dtype=torch.float64)
    C[:, 0::2] = target.cos.T
    C[:, 1::2] = target.sin.T
    return A, z0, C
