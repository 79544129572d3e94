"""The "julia" engine: DifferentialEquations.jl + SciMLSensitivity through juliacall (gnode_bridge).

Nothing starts Julia early: constructing the engine imports the bridge's Python side (its contract and
settings; juliacall is not imported), `available()` checks without starting Julia, and the first solve
starts Julia on the bridge's own thread. The engine integrates gnODE-family vector fields (models exporting
`spec()`).
"""

from __future__ import annotations

from gnode import algorithms
from gnode.engines.registry import AbstractEngine


class JuliaEngine(AbstractEngine):
    """Solves with OrdinaryDiffEq.jl, gradients by SciMLSensitivity.jl; algorithms cross with their options.

    The engine's own settings are the instance's (`gnode_bridge.solve.EngineConfig`), so a configured engine
    is passed to `solve` as an object and travels with it (pickled) to Ray or torch.distributed workers:

        eng = JuliaEngine(mode="batched", vjp="ZygoteVJP")
        gnode.solve(prob, gnode.Tsit5(), engine=eng)

    mode: "ensemble" | "batched" | None (ensemble on CPU, batched on CUDA); vjp: the continuous adjoints'
    vector-Jacobian products ("auto", "EnzymeVJP", ...); keep: keep solutions for dense output without
    gradients; default_sensealg: the sensealg name used when gradients are needed and sensealg=None.
    `algorithms`/`sensealgs` are the gnode classes whose names the Julia module implements
    (`gnode_bridge.contract`).
    """

    name = "julia"

    def __init__(
        self,
        *,
        mode: str | None = None,
        vjp: str = "auto",
        keep: bool = False,
        default_sensealg: str = "InterpolatingAdjoint",
    ):
        from gnode_bridge import contract
        from gnode_bridge.solve import EngineConfig

        self.config = EngineConfig(mode=mode, vjp=vjp, keep=keep, default_sensealg=default_sensealg)
        self.algorithms = tuple(c for n in contract.ALGORITHMS if isinstance(c := getattr(algorithms, n, None), type))
        self.sensealgs = tuple(c for n in contract.SENSEALGS if isinstance(c := getattr(algorithms, n, None), type))

    def __repr__(self) -> str:
        from gnode_bridge.solve import EngineConfig

        default = EngineConfig()
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self.config).items() if getattr(default, k) != v)
        return f"JuliaEngine({args})"

    def available(self) -> tuple[bool, str]:
        from gnode_bridge.status import julia_status

        status = julia_status()
        return status.usable, status.reason

    def solve(self, prob, alg, sensealg, opts):
        from gnode_bridge.solve import solve

        return solve(prob, alg, sensealg, opts, config=self.config)


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
