"""Exact coefficient data of every method; nothing here depends on an engine."""

from gnode.algorithms.tableaus.butcher import ButcherTableau, q
from gnode.algorithms.tableaus.explicit import BS3, DP5, EULER, MIDPOINT, RK4, TSIT5, VERN7

__all__ = ["BS3", "DP5", "EULER", "MIDPOINT", "RK4", "TSIT5", "VERN7", "ButcherTableau", "q"]
