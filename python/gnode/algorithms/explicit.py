"""Explicit Runge–Kutta methods. Each is a tableau (see `tableaus/explicit.py`), its order and interpolant."""

from __future__ import annotations

from dataclasses import dataclass

from gnode.algorithms import tableaus
from gnode.algorithms.base import AbstractExplicitRK


@dataclass(frozen=True, repr=False)
class Euler(AbstractExplicitRK):
    """Forward Euler. Fixed step (`dt`), order 1, 1 stage, linear interpolant."""

    tableau = property(lambda self: tableaus.EULER)


@dataclass(frozen=True, repr=False)
class Midpoint(AbstractExplicitRK):
    """Explicit midpoint rule. Fixed step (`dt`), order 2, 2 stages, order-2 continuous extension."""

    tableau = property(lambda self: tableaus.MIDPOINT)


@dataclass(frozen=True, repr=False)
class RK4(AbstractExplicitRK):
    """Classical Runge–Kutta. Fixed step (`dt`), order 4, 4 stages, order-3 continuous extension."""

    tableau = property(lambda self: tableaus.RK4)


@dataclass(frozen=True, repr=False)
class BS3(AbstractExplicitRK):
    """Bogacki–Shampine 3(2) (Appl. Math. Lett. 1989). Adaptive, order 3, 4 stages (FSAL), cubic Hermite interpolant."""

    tableau = property(lambda self: tableaus.BS3)


@dataclass(frozen=True, repr=False)
class DP5(AbstractExplicitRK):
    """Dormand–Prince 5(4) (J. Comp. Appl. Math. 1980). Adaptive, order 5, 7 stages (FSAL), Shampine's order-4
    interpolant."""

    tableau = property(lambda self: tableaus.DP5)


@dataclass(frozen=True, repr=False)
class Tsit5(AbstractExplicitRK):
    """Tsitouras 5(4) (Comput. Math. Appl. 2011). Adaptive, order 5, 7 stages (FSAL), order-4 free interpolant."""

    tableau = property(lambda self: tableaus.TSIT5)


@dataclass(frozen=True, repr=False)
class Vern7(AbstractExplicitRK):
    """Verner's "most efficient" 7(6) (Numer. Algorithms 2010). Adaptive, order 7, 10 stages, and the
    published interpolant with 6 extra stages evaluated lazily where dense output is asked. That
    interpolant is order 6, not 7 (Verner's erratum of the original coefficients; OrdinaryDiffEq.jl ships
    the same ones), so dense output and `saveat` carry order-6 error."""

    tableau = property(lambda self: tableaus.VERN7)


EXPLICIT_ALGORITHMS = (Euler, Midpoint, RK4, BS3, DP5, Tsit5, Vern7)
