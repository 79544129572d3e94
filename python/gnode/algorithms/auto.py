"""Automatic stiffness switching: `AutoTsit5(Rodas5P())`, `AutoVern7(Rodas5P())` (OrdinaryDiffEq.jl's AutoSwitch).

Every trajectory starts on the explicit method and decides for itself, after each accepted step, whether it is
stiff: with ρ an estimate of the dominant eigenvalue's modulus — Hairer's ‖f(g_s) - f(g_{s-1})‖ / ‖g_s - g_{s-1}‖
from the explicit method's last two stages (both at c = 1; Hairer, Nørsett & Wanner I, II.10 / Hairer & Wanner
II, IV.2), or ‖J‖_∞ on the stiff method — the step was limited by stability when ρ |dt| exceeds the explicit
method's stability size (the real-axis extent of its stability region) times `nonstifftol`/`stifftol`.
`maxstiffstep` consecutive stiff verdicts switch a trajectory to the stiff method; `maxnonstiffstep` consecutive
non-stiff ones switch it back. `stats.nstiffswitch` counts the switches per trajectory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gnode.algorithms.base import AbstractAlgorithm
from gnode.algorithms.esdirk import AbstractESDIRK
from gnode.algorithms.explicit import Tsit5, Vern7
from gnode.algorithms.rosenbrock import AbstractRosenbrock


@dataclass(frozen=True, repr=False)
class AbstractAutoSwitch(AbstractAlgorithm):
    """An explicit method (`nonstiff`, fixed by the class) and a stiff one (`stiffalg`), switched per trajectory.

    stiffalg:         the stiff method, e.g. Rodas5P() (any Rosenbrock or ESDIRK method).
    maxstiffstep:     consecutive stiff verdicts before switching to the stiff method (OrdinaryDiffEq: 10).
    maxnonstiffstep:  consecutive non-stiff verdicts before switching back (3).
    nonstifftol, stifftol:  the fraction of the stability size that counts as stiff on the explicit / stiff
                      method (9/10 each).
    stiffalgfirst:    start every trajectory on the stiff method.
    """

    stiffalg: AbstractAlgorithm = None
    maxstiffstep: int = 10
    maxnonstiffstep: int = 3
    nonstifftol: float = 0.9
    stifftol: float = 0.9
    stiffalgfirst: bool = False
    nonstiff: AbstractAlgorithm = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.stiffalg, (AbstractRosenbrock, AbstractESDIRK)):
            raise TypeError(
                f"{self.name}: stiffalg must be a stiff method instance such as Rodas5P() or "
                f"KenCarp4(), got {self.stiffalg!r}"
            )
        for name in ("maxstiffstep", "maxnonstiffstep"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 0):
                raise ValueError(f"{self.name}: {name} must be a non-negative integer, got {v!r}")
        for name in ("nonstifftol", "stifftol"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0):
                raise ValueError(f"{self.name}: {name} must be a positive number, got {v!r}")
        object.__setattr__(self, "nonstiff", self._nonstiff())

    def _nonstiff(self) -> AbstractAlgorithm:
        raise NotImplementedError

    @property
    def stability_size(self) -> float:
        raise NotImplementedError

    @property
    def order(self) -> int:
        return self.nonstiff.order

    @property
    def error_order(self) -> int | None:
        # one step-size controller serves both methods: take the smaller embedded order (the cautious exponent)
        return min(self.nonstiff.error_order, self.stiffalg.error_order)

    @property
    def adaptive(self) -> bool:
        return True

    def __repr__(self) -> str:
        extra = "".join(
            f", {k}={getattr(self, k)!r}"
            for k in ("maxstiffstep", "maxnonstiffstep", "nonstifftol", "stifftol", "stiffalgfirst")
            if getattr(self, k) != type(self).__dataclass_fields__[k].default
        )
        return f"{self.name}({self.stiffalg!r}{extra})"


@dataclass(frozen=True, repr=False)
class AutoTsit5(AbstractAutoSwitch):
    """Tsit5() on non-stiff stretches, `stiffalg` on stiff ones, per trajectory. Stability size 3.5068
    (OrdinaryDiffEq.jl's `alg_stability_size(Tsit5())`)."""

    def _nonstiff(self):
        return Tsit5()

    @property
    def stability_size(self) -> float:
        return 3.5068


@dataclass(frozen=True, repr=False)
class AutoVern7(AbstractAutoSwitch):
    """Vern7() on non-stiff stretches, `stiffalg` on stiff ones, per trajectory. Stability size 4.64
    (OrdinaryDiffEq.jl's `alg_stability_size(Vern7())`)."""

    def _nonstiff(self):
        return Vern7()

    @property
    def stability_size(self) -> float:
        return 4.64


AUTO_ALGORITHMS = (AutoTsit5, AutoVern7)
