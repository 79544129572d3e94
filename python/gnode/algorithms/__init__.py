"""Algorithms and sensitivity algorithms, independent of any engine."""

from gnode.algorithms.auto import AutoTsit5, AutoVern7
from gnode.algorithms.base import AbstractAlgorithm
from gnode.algorithms.esdirk import TRBDF2, KenCarp4, Kvaerno5
from gnode.algorithms.explicit import BS3, DP5, RK4, Euler, Midpoint, Tsit5, Vern7
from gnode.algorithms.rosenbrock import Rodas4, Rodas5P, Rosenbrock23
from gnode.algorithms.sensealg import (
    AbstractSensitivityAlgorithm,
    BacksolveAdjoint,
    BackpropAdjoint,
    InterpolatingAdjoint,
    QuadratureAdjoint,
)

__all__ = [
    "AbstractAlgorithm", "Euler", "Midpoint", "RK4", "BS3", "DP5", "Tsit5", "Vern7",
    "Rosenbrock23", "Rodas4", "Rodas5P", "TRBDF2", "KenCarp4", "Kvaerno5", "AutoTsit5", "AutoVern7",
    "AbstractSensitivityAlgorithm", "BackpropAdjoint", "BacksolveAdjoint", "InterpolatingAdjoint",
    "QuadratureAdjoint",
]
