"""gnode: gated neural ODEs (Kim, Can & Krishnamurthy, ICML 2023) with native PyTorch and Julia engines."""

from gnode.algorithms import (
    BS3, DP5, RK4, BacksolveAdjoint, BackpropAdjoint, Euler, InterpolatingAdjoint, Midpoint,
    QuadratureAdjoint, Tsit5, Vern7,
)
from gnode.api import solve
from gnode.problem import Control, ODEProblem
from gnode.retcode import ReturnCode, SolveError
from gnode.solution import ODESolution, SolveStats

__version__ = "0.1.0"

__all__ = [
    "ODEProblem", "Control", "solve", "ODESolution", "SolveStats", "ReturnCode", "SolveError",
    "Euler", "Midpoint", "RK4", "BS3", "DP5", "Tsit5", "Vern7",
    "BackpropAdjoint", "BacksolveAdjoint", "InterpolatingAdjoint", "QuadratureAdjoint",
]
