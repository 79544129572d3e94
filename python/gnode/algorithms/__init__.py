"""Algorithms and sensitivity algorithms, independent of any engine."""

from gnode.algorithms.base import AbstractAlgorithm
from gnode.algorithms.explicit import BS3, DP5, RK4, Euler, Midpoint, Tsit5, Vern7
from gnode.algorithms.sensealg import (
    AbstractSensitivityAlgorithm,
    BacksolveAdjoint,
    BackpropAdjoint,
    InterpolatingAdjoint,
    QuadratureAdjoint,
)

__all__ = [
    "AbstractAlgorithm", "Euler", "Midpoint", "RK4", "BS3", "DP5", "Tsit5", "Vern7",
    "AbstractSensitivityAlgorithm", "BackpropAdjoint", "BacksolveAdjoint", "InterpolatingAdjoint",
    "QuadratureAdjoint",
]
