"""Sensitivities of the native engine: backprop through the solver, and continuous adjoints.

`solver_for(sensealg)` is the one place a sensitivity algorithm picks its solve."""

from __future__ import annotations

from gnode.algorithms.sensealg import AbstractContinuousAdjoint, BackpropAdjoint
from gnode.engines.torch.sensitivity.adjoint import solve_adjoint
from gnode.engines.torch.sensitivity.backprop import solve_backprop

SOLVERS = {BackpropAdjoint: solve_backprop, AbstractContinuousAdjoint: solve_adjoint}


def solver_for(sensealg):
    """solve(prob, alg, sensealg, opts) for `sensealg` (None: backprop through the solver)."""
    if sensealg is None:
        return solve_backprop
    for kind, solver in SOLVERS.items():
        if isinstance(sensealg, kind):
            return solver
    raise ValueError(f"the torch engine has no sensitivity algorithm {sensealg.name}()")
