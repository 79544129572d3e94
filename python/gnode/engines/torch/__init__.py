"""The native PyTorch engine: explicit and stiff methods, per-trajectory adaptivity, CPU and CUDA."""

from __future__ import annotations

from gnode.algorithms.auto import AUTO_ALGORITHMS
from gnode.algorithms.esdirk import ESDIRK_ALGORITHMS
from gnode.algorithms.explicit import EXPLICIT_ALGORITHMS
from gnode.algorithms.radau import RADAU_ALGORITHMS
from gnode.algorithms.rosenbrock import ROSENBROCK_ALGORITHMS
from gnode.algorithms.sensealg import SENSEALGS
from gnode.engines.registry import AbstractEngine
from gnode.engines.torch.sensitivity import solver_for


class TorchEngine(AbstractEngine):
    name = "torch"
    algorithms = EXPLICIT_ALGORITHMS + ROSENBROCK_ALGORITHMS + ESDIRK_ALGORITHMS + RADAU_ALGORITHMS + AUTO_ALGORITHMS
    sensealgs = SENSEALGS

    def solve(self, prob, alg, sensealg, opts):
        return solver_for(sensealg)(prob, alg, sensealg, opts)


def make_engine() -> TorchEngine:
    return TorchEngine()
