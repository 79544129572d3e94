"""The stepper protocol of the native engine: what the integration loop asks of a method, and nothing more.

A stepper is a method's tableau cast to one dtype and device, and the step that walks it:

    state = stepper.init(rhs, t, y, f0)                 per-solve state: a tuple of (batch, ...) tensors, or None
    res   = stepper.step(rhs, state, t, y, h, f0)       one attempted step of size h (batch,) from (t, y)
    state = stepper.accepted(res.state, accept)         told which rows' steps the loop accepted
    y(θ)  = stepper.interpolate(y0, h, dense, θ)         the method's dense output on a recorded step

`rhs` is the right-hand side of this step (`gnode.engines.torch.rhs.StepRHS`): rhs(t, y) = f(t, y[, x(t)]) on the
step's rows and input segment, with `jacobian` and `time_derivative`. `f0` = f(t, y) is given by the loop (the
previous step's FSAL stage, or a fresh evaluation). Every per-row tensor, in the state and in `dense`, has the
batch as its first dimension, so that the loop can select, compact and record rows without knowing what they are.

Capabilities beyond the protocol are abstract classes, checked with `isinstance`:
    `AbstractRKStages`   stages at states the adjoint can rebuild (`b`, `c`, `stage_states`): the continuous
                         adjoints integrate the parameter gradient with the method's own weights;
    `AbstractLazyDense`  an interpolant that needs extra stages, evaluated only where dense output is asked (Vern7);
    `AbstractTraceable`  a step without host synchronisation or data-dependent Python control flow, so that
                         `solve(..., compile=True)` can trace the whole attempt into one graph.
"""

from __future__ import annotations

import abc
from typing import NamedTuple

import torch

from gnode.solution import STAT_NAMES

STAT_INDEX = {name: i for i, name in enumerate(STAT_NAMES)}


class StepResult(NamedTuple):
    """One attempted step. err: the local error estimate (batch, n), +inf on rows whose step failed outright
    (a singular W, a Newton iteration that diverged), None for fixed-step methods. dense: a tuple of batch-first
    tensors for `interpolate`. f1: f(t + h, y1) where the method evaluated it (FSAL), else None. counts: this
    step's statistics (`STAT_NAMES` order), (C,) for every row alike or (batch, C) per row; nf included."""

    y1: torch.Tensor
    err: torch.Tensor | None
    dense: tuple
    f1: torch.Tensor | None
    state: object
    counts: torch.Tensor


class AbstractStepper(abc.ABC):
    """A method cast to a dtype and device. `traced`: the step is being traced into a compiled graph, so stage
    combinations are written as sums of scaled tensors (which the compiler fuses) rather than matrix products
    over a stage buffer (which eager mode prefers: one kernel instead of many)."""

    fsal: bool
    order: int
    error_order: int | None

    def init(self, rhs, t: torch.Tensor, y: torch.Tensor, f0: torch.Tensor):
        """The per-solve state before the first step (default: none)."""
        return

    @abc.abstractmethod
    def step(self, rhs, state, t: torch.Tensor, y: torch.Tensor, h: torch.Tensor, f0: torch.Tensor) -> StepResult:
        """Attempt a step of size h (batch,) from (t, y); rows with h = 0 are not running and must stay finite."""

    def accepted(self, state, accept: torch.Tensor):
        """The state after the loop's verdict on the step (default: unchanged)."""
        return state

    @abc.abstractmethod
    def interpolate(self, y0: torch.Tensor, h: torch.Tensor, dense: tuple, theta: torch.Tensor) -> torch.Tensor:
        """u(t0 + θ h) for P points: y0 (P, n), h (P,), dense leaves (P, ...), θ (P,) in [0, 1] → (P, n)."""


class AbstractRKStages(abc.ABC):
    """A Runge–Kutta method whose stage derivatives are dense[0] (P, s, n): weights `b` (s,), nodes `c`, and the
    stage states rebuilt from them."""

    b: torch.Tensor
    c: list[float]

    @abc.abstractmethod
    def stage_states(self, y: torch.Tensor, h: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        """The states (batch, s, n) at which the stages K (batch, s, n) were evaluated."""


class AbstractLazyDense(abc.ABC):
    """An interpolant that needs `n_extra` stages beyond the step's own, computed on demand."""

    n_extra: int

    @abc.abstractmethod
    def extra_stages(self, rhs, t: torch.Tensor, y: torch.Tensor, h: torch.Tensor, dense: tuple) -> tuple:
        """(`dense` with the extra stages added, evaluations of f per row (P,)) for the same P rows."""


class AbstractTraceable(abc.ABC):
    """A step that `torch.compile(fullgraph=True)` can trace: no host syncs, no data-dependent Python branches."""


def as_counts(dtype=torch.long, device=None, **counts) -> torch.Tensor:
    """A (C,) counts vector in `STAT_NAMES` order from keyword counts (the rest zero)."""
    v = torch.zeros(len(STAT_NAMES), dtype=dtype, device=device)
    for name, value in counts.items():
        v[STAT_INDEX[name]] = value
    return v


def per_row_counts(batch: int, device, **counts) -> torch.Tensor:
    """A (batch, C) counts matrix from keyword counts, each an int or a (batch,) tensor (the rest zero)."""
    cols = [torch.zeros(batch, dtype=torch.long, device=device)] * len(STAT_NAMES)
    for name, value in counts.items():
        cols[STAT_INDEX[name]] = torch.as_tensor(value, dtype=torch.long, device=device).expand(batch)
    return torch.stack(cols, dim=1)


class CastTableau:
    """Exact tableau coefficients cast once per (dtype, device), shared by every stepper family.

    vec(xs) → a tensor; floats(xs) → Python floats (constants a traced graph bakes in); rows(rows) → one tensor
    per row; dense(rows) → the interpolant's monomial coefficients (rows, degree), zero-padded."""

    def __init__(self, dtype: torch.dtype, device):
        self.dtype, self.device = dtype, device

    def vec(self, xs) -> torch.Tensor:
        return torch.tensor([float(x) for x in xs], dtype=self.dtype, device=self.device)

    @staticmethod
    def floats(xs) -> list[float]:
        return [float(x) for x in xs]

    def rows(self, rows) -> list[torch.Tensor]:
        return [self.vec(r) for r in rows]

    def dense(self, rows) -> torch.Tensor:
        degree = max(len(r) for r in rows)
        return torch.tensor(
            [[float(x) for x in r] + [0.0] * (degree - len(r)) for r in rows], dtype=self.dtype, device=self.device
        )


def combine(weights: torch.Tensor, floats: list[float], K, traced: bool) -> torch.Tensor:
    """Σ_j w_j K_j over the first len(weights) stages. K: a (s, batch, n) buffer, or a list of (batch, n) stages.

    Traced: a sum of scaled stages (skipping zero weights), which the compiler fuses into one loop. Eager: one
    matrix product over the stacked stages (one kernel, whatever the stage count)."""
    if traced:
        out = None
        for w, k in zip(floats, K):
            if w != 0.0:
                term = w * k
                out = term if out is None else out + term
        return torch.zeros_like(K[0]) if out is None else out
    s = weights.shape[0]
    return (weights @ K[:s].reshape(s, -1)).reshape(K.shape[1:])


def powers(theta: torch.Tensor, degree: int) -> torch.Tensor:
    """θ, θ², ..., θ^degree as columns: (P,) → (P, degree)."""
    return theta[:, None] ** torch.arange(1, degree + 1, device=theta.device, dtype=theta.dtype)
