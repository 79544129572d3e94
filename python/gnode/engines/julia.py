"""The "julia" engine: DifferentialEquations.jl + SciMLSensitivity through juliacall (gnode_bridge).

Everything heavy is imported on demand: constructing the engine imports only the bridge's contract
(plain data), `available()` checks without starting Julia, and the first solve starts Julia on the
bridge's own thread. The engine integrates gnODE-family vector fields (models exporting `spec()`).
"""

from __future__ import annotations

from gnode import algorithms
from gnode.engines.registry import AbstractEngine


class JuliaEngine(AbstractEngine):
    """Solves with OrdinaryDiffEq.jl by algorithm name; gradients by SciMLSensitivity.jl by sensealg name.

    `algorithms`/`sensealgs` are the gnode classes whose names the Julia module implements (see
    `gnode_bridge.contract`). Engine options (mode, vjp, keep): `gnode_bridge.solve.configure`.
    """

    name = "julia"

    def __init__(self):
        from gnode_bridge import contract

        self.algorithms = tuple(c for n in contract.ALGORITHMS if isinstance(c := getattr(algorithms, n, None), type))
        self.sensealgs = tuple(c for n in contract.SENSEALGS if isinstance(c := getattr(algorithms, n, None), type))

    def available(self) -> tuple[bool, str]:
        from gnode_bridge.status import julia_status

        status = julia_status()
        return status.usable, status.reason

    def solve(self, prob, alg, sensealg, opts):
        from gnode_bridge.solve import solve

        return solve(prob, alg, sensealg, opts)


def julia_info(probe: bool = False) -> tuple[bool, str]:
    """(usable, why not / what was found) for `gnode info`; `probe=True` also starts Julia in a subprocess."""
    from gnode_bridge.status import julia_status

    status = julia_status(probe=probe)
    return status.usable, status.reason


def setup_julia(cuda: bool = False, log=print) -> tuple[bool, str]:
    """What `gnode julia setup` runs: install Julia (if missing) and the engine's packages, then precompile."""
    from gnode_bridge.status import setup

    status = setup(cuda=cuda, log=log)
    return status.usable, status.reason


def make_engine() -> JuliaEngine:
    return JuliaEngine()
