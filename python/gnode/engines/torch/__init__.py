"""The native PyTorch engine: explicit and stiff methods, per-trajectory adaptivity, CPU and CUDA."""

from __future__ import annotations

from gnode.algorithms.auto import AUTO_ALGORITHMS
from gnode.algorithms.esdirk import ESDIRK_ALGORITHMS
from gnode.algorithms.explicit import EXPLICIT_ALGORITHMS
from gnode.algorithms.rosenbrock import ROSENBROCK_ALGORITHMS
from gnode.algorithms.sensealg import SENSEALGS, BackpropAdjoint
from gnode.engines.registry import AbstractEngine


class TorchEngine(AbstractEngine):
    name = "torch"
    algorithms = EXPLICIT_ALGORITHMS + ROSENBROCK_ALGORITHMS + ESDIRK_ALGORITHMS + AUTO_ALGORITHMS
    sensealgs = SENSEALGS

    def solve(self, prob, alg, sensealg, opts):
        if sensealg is None or isinstance(sensealg, BackpropAdjoint):
            from gnode.engines.torch.sensitivity.backprop import solve_backprop
            return solve_backprop(prob, alg, opts)
        from gnode.engines.torch.sensitivity.adjoint import solve_adjoint
        return solve_adjoint(prob, alg, sensealg, opts)


def make_engine() -> TorchEngine:
    return TorchEngine()
