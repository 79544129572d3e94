"""Engines by name. An engine solves an `ODEProblem` with an algorithm and a sensitivity algorithm."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SolveOptions:
    """Problem-level options of `gnode.solve`, validated once there (see its docstring)."""

    saveat: object  # torch.Tensor (time,)
    reltol: float
    abstol: float
    dt: float | None
    dtmin: float | None
    dtmax: float | None
    maxiters: int
    tstops: object | None  # torch.Tensor or None
    throw: bool
    controller: object | None = None  # an AbstractController, or None for the method's default
    compile: object = None  # the torch.compile backend of the native engine's compiled path, or None


class AbstractEngine:
    """An ODE engine. `algorithms`/`sensealgs` list the types it supports, so that a request for
    anything else can be answered with what it has."""

    name: str
    algorithms: tuple[type, ...]
    sensealgs: tuple[type, ...]

    def available(self) -> tuple[bool, str]:
        """(usable here?, why not)."""
        return True, ""

    def solve(self, prob, alg, sensealg, opts: SolveOptions):
        raise NotImplementedError


_ENGINES: dict[str, Callable[[], AbstractEngine]] = {}
_INSTANCES: dict[str, AbstractEngine] = {}


def register(name: str, factory: Callable[[], AbstractEngine]) -> None:
    """Register an engine under `name`; `factory` is called on first use (heavy imports stay lazy)."""
    _ENGINES[name] = factory
    _INSTANCES.pop(name, None)


def engine_names() -> list[str]:
    return sorted(_ENGINES)


def get_engine(name: str | AbstractEngine) -> AbstractEngine:
    """The engine registered as `name`; an engine instance (one configured by its constructor, e.g.
    `JuliaEngine(mode="batched")`) is returned as it is, so its settings travel with it."""
    if isinstance(name, AbstractEngine):
        return name
    if name not in _ENGINES:
        raise ValueError(f"unknown engine {name!r}; available engines: {', '.join(engine_names())}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _ENGINES[name]()
    return _INSTANCES[name]
