"""Sensitivity algorithms: how gradients of a solve are computed. Named as in SciMLSensitivity.jl."""

from __future__ import annotations

from dataclasses import dataclass

from gnode.algorithms.base import AbstractAlgorithm


class AbstractSensitivityAlgorithm:
    """How to differentiate a solve. Concrete ones are frozen dataclasses carrying their own options."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        fields = getattr(self, "__dataclass_fields__", {})
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in fields if getattr(self, k) != fields[k].default)
        return f"{self.name}({args})"


@dataclass(frozen=True, repr=False)
class BackpropAdjoint(AbstractSensitivityAlgorithm):
    """Discretise-then-differentiate: reverse-mode autodiff through every operation of the solver.

    Exact gradient of the computed solution (step sizes are treated as constants); memory grows with the
    number of steps. The default for training. (SciML: `ReverseDiffAdjoint`/`ZygoteAdjoint`; diffrax:
    `RecursiveCheckpointAdjoint`.)
    """


@dataclass(frozen=True, repr=False)
class AbstractContinuousAdjoint(AbstractSensitivityAlgorithm):
    """Optimise-then-discretise: solve the adjoint ODE a' = -a^T ∂f/∂u backwards in time.

    alg:     the method for the backward solve (default: the forward method).
    reltol, abstol: its tolerances (default: those of the forward solve).
    """

    alg: AbstractAlgorithm | None = None
    reltol: float | None = None
    abstol: float | None = None


@dataclass(frozen=True, repr=False)
class BacksolveAdjoint(AbstractContinuousAdjoint):
    """Re-solves u backwards together with the adjoint; O(1) memory in the number of steps, but unstable
    for dissipative (and so for stiff) problems, where the backward u drifts from the forward one."""


@dataclass(frozen=True, repr=False)
class InterpolatingAdjoint(AbstractContinuousAdjoint):
    """Takes u(t) from the forward solution's dense output (checkpointing=False) or re-solves forward from
    checkpoints at the saved points on each interval (checkpointing=True, less memory)."""

    checkpointing: bool = False


@dataclass(frozen=True, repr=False)
class QuadratureAdjoint(AbstractContinuousAdjoint):
    """Solves only the adjoint state backwards, then integrates the parameter gradient
    ∫ a^T ∂f/∂θ dt with Gauss–Legendre quadrature on every backward step (`order` nodes per step)."""

    order: int = 5


SENSEALGS = (BackpropAdjoint, BacksolveAdjoint, InterpolatingAdjoint, QuadratureAdjoint)
