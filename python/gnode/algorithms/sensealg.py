"""Sensitivity algorithms: how gradients of a solve are computed. Named as in SciMLSensitivity.jl."""

from __future__ import annotations

from dataclasses import dataclass

from gnode.algorithms.base import AbstractAlgorithm, from_spec, to_spec


class AbstractSensitivityAlgorithm:
    """How to differentiate a solve. Concrete ones are frozen dataclasses carrying their own options."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        fields = getattr(self, "__dataclass_fields__", {})
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in fields if getattr(self, k) != fields[k].default)
        return f"{self.name}({args})"

    def to_spec(self) -> dict:
        """Plain data (JSON-able): {"name": "InterpolatingAdjoint", "options": {"alg": None or an algorithm's
        spec, "checkpointing": False, ...}} with every option (`gnode.algorithms.base.to_spec`)."""
        return to_spec(self)

    @classmethod
    def from_spec(cls, spec: dict) -> AbstractSensitivityAlgorithm:
        """The sensitivity algorithm that `to_spec()` wrote."""
        return from_spec(cls, spec)


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
    """Re-solves u backwards together with the adjoint: O(1) memory in the number of steps.

    The wrong choice for contracting (dissipative) dynamics, stiff ones included: run backwards they expand, so
    the reconstructed u drifts away from the forward one and the gradient with it (a relative gradient error of
    1e9 was recorded on a critical gnODE at rtol 1e-4). The solve warns when the state it reconstructs at t0 is
    far from u0. checkpointing=True resets the reconstructed state to the forward solution at the saved times
    (SciMLSensitivity's `BacksolveAdjoint(checkpointing=true)`), which bounds the drift to one interval between
    saved times; InterpolatingAdjoint() avoids it altogether."""

    checkpointing: bool = False


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
