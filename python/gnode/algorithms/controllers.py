"""Step-size controllers: `solve(..., controller=PIController(...))`. Named as in OrdinaryDiffEq.jl.

A controller turns a step's error estimate into accept/reject and the next step size. Its arithmetic is plain
tensor math on (batch,) tensors, the same on every device, so it lives here with its options; an engine that
cannot honour an option refuses it by name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import torch

NORMS = ("trajectory", "batch")


class AbstractController:
    """How a step's error estimate becomes accept/reject and the next step size.

    norm: "trajectory" (the default) — every trajectory has its own error norm, step size and accept/reject
    (gnode's per-trajectory adaptivity); "batch" — one RMS norm over the whole batch, so every trajectory takes the
    same steps, as torchdiffeq treats a batch (one system). The batch norm can need fewer batched evaluations
    when trajectories are alike, and more when one is much harder than the rest (it sets everyone's step).
    """

    norm: str

    @property
    def name(self) -> str:
        return type(self).__name__

    def resolve(self, error_order: int, max_iter: int | None = None) -> AbstractController:
        """This controller with the defaults that depend on the method filled in: its embedded order, and the
        Newton iteration limit of a method whose step iterates (None for the others)."""
        return self

    def init(self, like: torch.Tensor):
        """Per-trajectory controller state before the first step, for rows shaped like `like` (batch,)."""
        raise NotImplementedError

    def propose(self, h: torch.Tensor, eest: torch.Tensor, state, accept: torch.Tensor, iterations: torch.Tensor):
        """(|dt| of the next attempt (batch,), new state) from this attempt's |h| (batch,), error estimate
        (batch,; +inf where the step failed), verdict, and Newton iterations (the step's `nnonliniter`, (batch,)
        or a scalar; 0 for methods without)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = getattr(self, "__dataclass_fields__", {})
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in fields if getattr(self, k) != fields[k].default)
        return f"{self.name}({args})"


@dataclass(frozen=True, repr=False)
class PIController(AbstractController):
    """The PI controller of OrdinaryDiffEq.jl (Hairer & Wanner II, IV.2; Gustafsson 1991):

        q = clamp(EEst^β1 / qold^β2 / γ, 1/qmax, 1/qmin);  dt_new = dt / q on accept,
        dt_new = dt / min(1/qmin, EEst^β1 / γ) on reject;  qold = max(EEst, qoldinit) after an accept.

    beta1, beta2: default 7/(10k) and 2/(5k) with k = the embedded order + 1 (OrdinaryDiffEq's defaults);
    beta2 = 0 is the classical integral (I) controller. gamma: safety factor. qmin, qmax: the most a step may
    shrink or grow at once. norm: see `AbstractController`.
    """

    beta1: float | None = None
    beta2: float | None = None
    gamma: float = 0.9
    qmin: float = 0.2
    qmax: float = 10.0
    qoldinit: float = 1e-4
    norm: str = "trajectory"

    def __post_init__(self):
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and 0 <= v < 1):
                raise ValueError(
                    f"PIController: {name} must be a number in [0, 1) (or None for the method's default), got {v!r}"
                )
        if not (isinstance(self.gamma, (int, float)) and 0 < self.gamma <= 1):
            raise ValueError(f"PIController: gamma must lie in (0, 1], got {self.gamma!r}")
        if not (
            isinstance(self.qmin, (int, float))
            and isinstance(self.qmax, (int, float))
            and 0 < self.qmin < 1 < self.qmax
        ):
            raise ValueError(f"PIController: need 0 < qmin < 1 < qmax, got qmin={self.qmin!r}, qmax={self.qmax!r}")
        if not (isinstance(self.qoldinit, (int, float)) and self.qoldinit > 0):
            raise ValueError(f"PIController: qoldinit must be positive, got {self.qoldinit!r}")
        if self.norm not in NORMS:
            raise ValueError(f"PIController: norm must be one of {NORMS}, got {self.norm!r}")

    def resolve(self, error_order: int, max_iter: int | None = None) -> PIController:
        k = error_order + 1
        return replace(
            self,
            beta1=0.7 / k if self.beta1 is None else self.beta1,
            beta2=0.4 / k if self.beta2 is None else self.beta2,
        )

    def init(self, like):
        return torch.full_like(like, self.qoldinit)

    def propose(self, h, eest, qold, accept, iterations):
        q11 = eest.pow(self.beta1)
        q = (q11 * qold.pow(-self.beta2) / self.gamma).clamp(1 / self.qmax, 1 / self.qmin)
        q_reject = (q11 / self.gamma).clamp(max=1 / self.qmin)
        dt_next = h / torch.where(accept, q, q_reject)
        return dt_next, torch.where(accept, eest.clamp(min=self.qoldinit), qold)


class PredictiveState(NamedTuple):
    """Per trajectory: the last accepted step's size and error (Gustafsson's memory), whether there was one, and
    whether the last attempt was rejected."""

    dtacc: torch.Tensor
    erracc: torch.Tensor
    started: torch.Tensor
    rejected: torch.Tensor


@dataclass(frozen=True, repr=False)
class PredictiveController(AbstractController):
    """Gustafsson's predictive controller (Gustafsson, ACM TOMS 20, 1994; Hairer & Wanner II, IV.8, eq. 8.25) as
    RADAU5 runs it, with OrdinaryDiffEq.jl's names; the default of the Radau IIA methods. With k = the embedded
    order + 1 and n the step's Newton iterations:

        fac = min(gamma, (1 + 2 max_iter) gamma / (n + 2 max_iter))    (more iterations: a more cautious step)
        q = clamp(EEst^(1/k) / fac, 1/qmax, 1/qmin)
        accept: q_gus = clamp((dtacc/dt) (EEst² / erracc)^(1/k) / gamma, 1/qmax, 1/qmin),  dt_new = dt / max(q, q_gus)
                (q alone on a trajectory's first accepted step); dtacc = dt, erracc = max(1e-2, EEst);
                dt_new = dt where qsteady_min <= max(q, q_gus) <= qsteady_max (a steady step keeps Jacobian and
                factorisations valid); after a rejection the step does not grow (RADAU5).
        reject: dt_new = dt / q, or dt / 10 before the trajectory's first accepted step;
                dt / failfactor where the step failed outright (EEst = inf: Newton did not converge, a singular W).

    gamma: safety factor; qmin, qmax: the most a step may shrink or grow at once (RADAU5's 1/5 and 8); max_iter:
    the Newton limit n is weighed against (None: the method's; methods without Newton iterations get fac = gamma);
    norm: see `AbstractController`.
    """

    gamma: float = 0.9
    qmin: float = 0.2
    qmax: float = 8.0
    qsteady_min: float = 1.0
    qsteady_max: float = 1.2
    failfactor: float = 2.0
    max_iter: int | None = None
    expo: float | None = None  # 1/k, from the method's embedded order when None
    norm: str = "trajectory"

    def __post_init__(self):
        if not (isinstance(self.gamma, (int, float)) and 0 < self.gamma <= 1):
            raise ValueError(f"PredictiveController: gamma must lie in (0, 1], got {self.gamma!r}")
        if not (
            isinstance(self.qmin, (int, float))
            and isinstance(self.qmax, (int, float))
            and 0 < self.qmin < 1 < self.qmax
        ):
            raise ValueError(
                f"PredictiveController: need 0 < qmin < 1 < qmax, got qmin={self.qmin!r}, qmax={self.qmax!r}"
            )
        if not (
            isinstance(self.qsteady_min, (int, float))
            and isinstance(self.qsteady_max, (int, float))
            and self.qsteady_min <= 1 <= self.qsteady_max
        ):
            raise ValueError(
                f"PredictiveController: need qsteady_min <= 1 <= qsteady_max, got "
                f"qsteady_min={self.qsteady_min!r}, qsteady_max={self.qsteady_max!r}"
            )
        if not (isinstance(self.failfactor, (int, float)) and self.failfactor > 1):
            raise ValueError(f"PredictiveController: failfactor must be > 1, got {self.failfactor!r}")
        if self.max_iter is not None and not (isinstance(self.max_iter, int) and self.max_iter >= 1):
            raise ValueError(
                f"PredictiveController: max_iter must be a positive integer or None, got {self.max_iter!r}"
            )
        if self.expo is not None and not (isinstance(self.expo, (int, float)) and 0 < self.expo <= 1):
            raise ValueError(
                f"PredictiveController: expo must lie in (0, 1] (or None for the method's), got {self.expo!r}"
            )
        if self.norm not in NORMS:
            raise ValueError(f"PredictiveController: norm must be one of {NORMS}, got {self.norm!r}")

    def resolve(self, error_order: int, max_iter: int | None = None) -> PredictiveController:
        return replace(
            self,
            expo=1 / (error_order + 1) if self.expo is None else self.expo,
            max_iter=max_iter if self.max_iter is None else self.max_iter,
        )

    def init(self, like):
        false = torch.zeros_like(like, dtype=torch.bool)
        return PredictiveState(torch.ones_like(like), torch.ones_like(like), false, false)

    def propose(self, h, eest, state: PredictiveState, accept, iterations):
        lo, hi = 1 / self.qmax, 1 / self.qmin
        fac = self.gamma
        if self.max_iter is not None:
            m = 2 * self.max_iter
            fac = ((1 + m) * self.gamma / (iterations.to(eest.dtype) + m)).clamp(max=self.gamma)
        q = (eest.pow(self.expo) / fac).clamp(lo, hi)  # EEst = 0: 1/qmax
        # accepted: Gustafsson's prediction from the last accepted step, where there is one
        safe_h = torch.where(h > 0, h, torch.ones_like(h))
        q_gus = ((state.dtacc / safe_h) * (eest.square() / state.erracc).pow(self.expo) / self.gamma).clamp(lo, hi)
        q_acc = torch.where(state.started, torch.maximum(q, q_gus), q)
        steady = (q_acc >= self.qsteady_min) & (q_acc <= self.qsteady_max)
        dt_acc = torch.where(steady, h, h / q_acc)
        dt_acc = torch.where(state.rejected, torch.minimum(dt_acc, h), dt_acc)
        # rejected
        dt_rej = torch.where(state.started, h / q, 0.1 * h)
        dt_rej = torch.where(torch.isinf(eest), h / self.failfactor, dt_rej)
        dt_next = torch.where(accept, dt_acc, dt_rej)
        new = PredictiveState(
            torch.where(accept, h, state.dtacc),
            torch.where(accept, eest.clamp(min=1e-2), state.erracc),
            state.started | accept,
            ~accept,
        )
        return dt_next, new


CONTROLLERS = (PIController, PredictiveController)
