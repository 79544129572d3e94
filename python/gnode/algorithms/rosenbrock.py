"""Rosenbrock (linearly implicit) methods: one Jacobian and one LU per step, no Newton iterations.

Each is a tableau (`tableaus/rosenbrock.py`), its order and its interpolant; the torch engine walks every one
with the same step (`engines/torch/rosenbrock.py`). They need ∂f/∂y (the model's structured Jacobian, else
autodiff) and ∂f/∂t (forward-mode autodiff) once per step. Use float64 for stiff problems.
"""

from __future__ import annotations

from dataclasses import dataclass

from gnode.algorithms.base import AbstractTableauAlgorithm
from gnode.algorithms.tableaus import rosenbrock as tableaus


@dataclass(frozen=True, repr=False)
class AbstractRosenbrock(AbstractTableauAlgorithm):
    """A Rosenbrock method given by its `tableau` (a `RosenbrockTableau`)."""


@dataclass(frozen=True, repr=False)
class Rosenbrock23(AbstractRosenbrock):
    """Shampine & Reichelt's ode23s method (SIAM J. Sci. Comput. 1997), as OrdinaryDiffEq.jl's Rosenbrock23.
    Order 2 (a W-method: any approximate Jacobian keeps order 2), order-3 error estimate, L-stable, 2 stages plus
    an FSAL stage f(t1, y1), order-2 interpolant. Good at loose tolerances (1e-2..1e-4)."""

    tableau = property(lambda self: tableaus.ROSENBROCK23)


@dataclass(frozen=True, repr=False)
class Rodas4(AbstractRosenbrock):
    """RODAS of Hairer & Wanner (Solving ODEs II, 1996, sec. IV.7). Order 4(3), 6 stages, L-stable, stiffly
    accurate, order-3 interpolant."""

    tableau = property(lambda self: tableaus.RODAS4)


@dataclass(frozen=True, repr=False)
class Rodas5P(AbstractRosenbrock):
    """Steinebach's Rodas5P (BIT Numer. Math. 63:27, 2023). Order 5(4), 8 stages, L-stable, stiffly accurate,
    order-4 interpolant. The default stiff method: efficient from loose to tight (1e-12) tolerances."""

    tableau = property(lambda self: tableaus.RODAS5P)


ROSENBROCK_ALGORITHMS = (Rosenbrock23, Rodas4, Rodas5P)
