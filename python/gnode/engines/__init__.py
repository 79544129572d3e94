"""Engines by name: "torch" (native, default) and the others as they are registered."""

from gnode.engines.registry import AbstractEngine, SolveOptions, engine_names, get_engine, register


def _torch():
    from gnode.engines.torch import make_engine

    return make_engine()


def _scipy():
    from gnode.engines.scipy import make_engine

    return make_engine()


def _julia():
    from gnode.engines.julia import make_engine

    return make_engine()


register("torch", _torch)
register("julia", _julia)
register("scipy", _scipy)

__all__ = ["AbstractEngine", "SolveOptions", "engine_names", "get_engine", "register"]
