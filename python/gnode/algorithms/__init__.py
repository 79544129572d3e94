"""Algorithms and sensitivity algorithms, independent of any engine."""

from gnode.algorithms.auto import AutoTsit5, AutoVern7
from gnode.algorithms.base import AbstractAlgorithm
from gnode.algorithms.esdirk import TRBDF2, KenCarp4, Kvaerno5
from gnode.algorithms.explicit import BS3, DP5, RK4, Euler, Midpoint, Tsit5, Vern7
from gnode.algorithms.radau import RadauIIA5, RadauIIA9
from gnode.algorithms.rosenbrock import Rodas4, Rodas5P, Rosenbrock23
from gnode.algorithms.sensealg import (
    AbstractSensitivityAlgorithm,
    BackpropAdjoint,
    BacksolveAdjoint,
    InterpolatingAdjoint,
    QuadratureAdjoint,
)

__all__ = [
    "BS3",
    "DP5",
    "RK4",
    "TRBDF2",
    "AbstractAlgorithm",
    "AbstractSensitivityAlgorithm",
    "AutoTsit5",
    "AutoVern7",
    "BackpropAdjoint",
    "BacksolveAdjoint",
    "Euler",
    "InterpolatingAdjoint",
    "KenCarp4",
    "Kvaerno5",
    "Midpoint",
    "QuadratureAdjoint",
    "RadauIIA5",
    "RadauIIA9",
    "Rodas4",
    "Rodas5P",
    "Rosenbrock23",
    "Tsit5",
    "Vern7",
]
