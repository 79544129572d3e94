"""Algorithm and sensitivity-algorithm objects from the text a user types, e.g. on the command line.

    "Tsit5"  or  "Tsit5()"                          → gnode.Tsit5()
    "InterpolatingAdjoint(checkpointing=True)"     → gnode.InterpolatingAdjoint(checkpointing=True)
    "BacksolveAdjoint(alg=Vern7(), reltol=1e-8)"   → nested algorithms and number/bool/str/None literals

Names are looked up among the concrete classes exported by `gnode.algorithms` (so methods added there are
found without touching this module); matching is exact first, then case-insensitive. The text is parsed
with `ast`, never evaluated: only names, keyword calls and literals are accepted.
"""

from __future__ import annotations

import ast

import gnode.algorithms as _algorithms
from gnode.algorithms.base import AbstractAlgorithm
from gnode.algorithms.sensealg import AbstractSensitivityAlgorithm


def known(base: type) -> dict[str, type]:
    """Concrete classes exported by `gnode.algorithms` that derive from `base`, by name."""
    out = {}
    for name in dir(_algorithms):
        obj = getattr(_algorithms, name)
        if isinstance(obj, type) and issubclass(obj, base) and not name.startswith("Abstract"):
            out[name] = obj
    return dict(sorted(out.items()))


def algorithm_from_name(text: str) -> AbstractAlgorithm:
    """An ODE algorithm (`gnode.Tsit5()`, ...) from its name or a call such as "Tsit5()"."""
    return _parse(text, AbstractAlgorithm, "solver")


def sensealg_from_name(text: str) -> AbstractSensitivityAlgorithm:
    """A sensitivity algorithm (`gnode.InterpolatingAdjoint(checkpointing=True)`, ...) from its text."""
    return _parse(text, AbstractSensitivityAlgorithm, "sensealg")


def _parse(text: str, base: type, what: str):
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what}: expected a name such as {_example(base)}, got {text!r}")
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"{what}: cannot parse {text!r}; write a name such as {_example(base)} or a call with "
                         f"keyword arguments such as {_example(base, call=True)}") from None
    return _build(node, base, what, text)


def _build(node, base, what, text):
    if isinstance(node, ast.Name):
        return _lookup(node.id, base, what)()
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        cls = _lookup(node.func.id, base, what)
        if node.args:
            raise ValueError(f"{what}: {text!r} passes positional arguments; use keywords, e.g. "
                             f"{_example(base, call=True)}")
        kwargs = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise ValueError(f"{what}: {text!r}: ** arguments are not accepted")
            kwargs[kw.arg] = _value(kw.value, what, text)
        try:
            return cls(**kwargs)
        except TypeError as e:
            fields = ", ".join(getattr(cls, "__dataclass_fields__", {})) or "none"
            raise ValueError(f"{what}: {text!r}: {e}; {cls.__name__} takes: {fields}") from None
    raise ValueError(f"{what}: cannot understand {text!r}; write a name such as {_example(base)}")


def _value(node, what, text):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return -node.operand.value
    if isinstance(node, (ast.Name, ast.Call)):  # a nested algorithm, e.g. alg=Tsit5()
        return _build(node, AbstractAlgorithm, "solver", text)
    raise ValueError(f"{what}: {text!r}: only numbers, strings, True/False/None and algorithms are accepted as values")


def _lookup(name: str, base: type, what: str) -> type:
    table = known(base)
    if name in table:
        return table[name]
    folded = {k.lower(): v for k, v in table.items()}
    if name.lower() in folded:
        return folded[name.lower()]
    raise ValueError(f"unknown {what} {name!r}; known: {', '.join(table)}")


def _example(base, call=False) -> str:
    if issubclass(base, AbstractSensitivityAlgorithm):
        return "InterpolatingAdjoint(checkpointing=True)" if call else "BacksolveAdjoint"
    return "Tsit5()" if call else "Tsit5"
