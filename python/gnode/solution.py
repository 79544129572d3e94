"""The solution of a batched solve: saved values, dense output, per-trajectory return codes and statistics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

import torch

from gnode.retcode import ReturnCode

STAT_NAMES = ("nf", "naccept", "nreject", "njacs", "nw", "nsolve", "nnonliniter", "nnonlinconvfail", "nstiffswitch")


@dataclass
class SolveStats:
    """Per-trajectory counters, each a (batch,) int64 tensor; names as in SciML's `DEStats`.

    nf: right-hand-side evaluations spent on the trajectory; naccept/nreject: steps; njacs: Jacobians;
    nw: factorisations (of W = I - γ dt J); nsolve: linear solves; nnonliniter/nnonlinconvfail: Newton
    iterations and failures; nstiffswitch: switches between the explicit and stiff method (Auto*).
    """

    nf: torch.Tensor
    naccept: torch.Tensor
    nreject: torch.Tensor
    njacs: torch.Tensor
    nw: torch.Tensor
    nsolve: torch.Tensor
    nnonliniter: torch.Tensor
    nnonlinconvfail: torch.Tensor
    nstiffswitch: torch.Tensor

    @classmethod
    def zeros(cls, batch: int, device=None) -> SolveStats:
        return cls(**{k: torch.zeros(batch, dtype=torch.long, device=device) for k in STAT_NAMES})

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def summary(self) -> dict[str, float]:
        """Mean over trajectories of each counter (what a progress bar or log line shows)."""
        return {k: float(v.double().mean()) for k, v in self.as_dict().items()}


@dataclass
class ODESolution:
    """t (time,), u (batch, time, n), `sol(t)` for dense output, `retcodes` (batch,) and `stats`.

    `retcode` is `Success` when every trajectory succeeded, else the failure of the first failing one.
    Values saved after a trajectory failed are NaN (only seen with `throw=False`).
    """

    t: torch.Tensor
    u: torch.Tensor
    retcodes: torch.Tensor
    stats: SolveStats
    alg: object
    engine: str
    t_final: torch.Tensor  # (batch,) where each trajectory stopped
    interp: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)
    adjoint_stats: SolveStats | None = field(default=None, repr=False)  # filled in by a continuous adjoint's backward

    @property
    def retcode(self) -> ReturnCode:
        bad = (self.retcodes != ReturnCode.Success).nonzero()
        return ReturnCode.Success if bad.numel() == 0 else ReturnCode(int(self.retcodes[bad[0, 0]]))

    @property
    def successful(self) -> bool:
        return self.retcode.successful

    def __call__(self, t) -> torch.Tensor:
        """Dense output at times `t` (a number or (time,) tensor) → (batch, time, n) (or (batch, n) for a number)."""
        if self.interp is None:
            raise NotImplementedError(
                f"the {self.engine} engine keeps no dense output for this solve; pass saveat instead"
            )
        scalar = not isinstance(t, torch.Tensor) and not hasattr(t, "__len__")
        tt = torch.as_tensor(t, dtype=self.u.dtype, device=self.u.device).reshape(-1)
        out = self.interp(tt)
        return out[:, 0] if scalar else out

    def __repr__(self) -> str:
        s = self.stats.summary()
        return (
            f"ODESolution({self.engine}, {self.alg!r}, retcode={self.retcode.name}, t: {tuple(self.t.shape)}, "
            f"u: {tuple(self.u.shape)}, mean nf={s['nf']:.1f}, naccept={s['naccept']:.1f}, nreject={s['nreject']:.1f})"
        )
