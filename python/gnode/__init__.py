"""gnode: gated neural ODEs (Kim, Can & Krishnamurthy, ICML 2023) with native PyTorch and Julia engines."""

from gnode.algorithms import (
    BS3,
    DP5,
    RK4,
    TRBDF2,
    AutoTsit5,
    AutoVern7,
    BackpropAdjoint,
    BacksolveAdjoint,
    Euler,
    InterpolatingAdjoint,
    KenCarp4,
    Kvaerno5,
    Midpoint,
    QuadratureAdjoint,
    RadauIIA5,
    RadauIIA9,
    Rodas4,
    Rodas5P,
    Rosenbrock23,
    Tsit5,
    Vern7,
)
from gnode.algorithms.controllers import PIController, PredictiveController
from gnode.api import solve
from gnode.problem import Control, ODEProblem
from gnode.retcode import ReturnCode, SolveError
from gnode.solution import ODESolution, SolveStats

__version__ = "0.1.0"

__all__ = [
    "BS3",
    "DP5",
    "RK4",
    "TRBDF2",
    "AutoTsit5",
    "AutoVern7",
    "BackpropAdjoint",
    "BacksolveAdjoint",
    "Control",
    "Euler",
    "InterpolatingAdjoint",
    "KenCarp4",
    "Kvaerno5",
    "Midpoint",
    "ODEProblem",
    "ODESolution",
    "PIController",
    "PredictiveController",
    "QuadratureAdjoint",
    "RadauIIA5",
    "RadauIIA9",
    "ReturnCode",
    "Rodas4",
    "Rodas5P",
    "Rosenbrock23",
    "SolveError",
    "SolveStats",
    "Tsit5",
    "Vern7",
    "solve",
]
