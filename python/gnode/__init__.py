"""gnode: gated neural ODEs (Kim, Can & Krishnamurthy, ICML 2023) with native PyTorch and Julia engines."""

from gnode.algorithms import (
    BS3, DP5, RK4, TRBDF2, AutoTsit5, AutoVern7, BacksolveAdjoint, BackpropAdjoint, Euler, InterpolatingAdjoint,
    KenCarp4, Kvaerno5, Midpoint, QuadratureAdjoint, Rodas4, Rodas5P, Rosenbrock23, Tsit5, Vern7,
)
from gnode.api import solve
from gnode.problem import Control, ODEProblem
from gnode.retcode import ReturnCode, SolveError
from gnode.solution import ODESolution, SolveStats

__version__ = "0.1.0"

__all__ = [
    "ODEProblem", "Control", "solve", "ODESolution", "SolveStats", "ReturnCode", "SolveError",
    "Euler", "Midpoint", "RK4", "BS3", "DP5", "Tsit5", "Vern7",
    "Rosenbrock23", "Rodas4", "Rodas5P", "TRBDF2", "KenCarp4", "Kvaerno5", "AutoTsit5", "AutoVern7",
    "BackpropAdjoint", "BacksolveAdjoint", "InterpolatingAdjoint", "QuadratureAdjoint",
]
