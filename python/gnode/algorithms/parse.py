"""Algorithm and sensitivity-algorithm objects from the text a user types (the command line, config files, specs).

    parse_algorithm("Tsit5")  or  parse_algorithm("Tsit5()")          → Tsit5()
    parse_algorithm("AutoTsit5(stiffalg=KenCarp4(kappa=0.02))")       → nested algorithms with options
    parse_algorithm("AutoTsit5(Rodas5P())")                          → positional arguments, in field order
    parse_sensealg("InterpolatingAdjoint(checkpointing=True)")
    parse_sensealg("BacksolveAdjoint(alg=Vern7(), reltol=1e-8)")

This is the one parser of algorithm text in gnode: `repr` of every algorithm parses back to an equal object,
so text written into a run's config.json or a model's spec() rebuilds what was used. Classes are found among
the concrete (non-`Abstract…`) subclasses of `AbstractAlgorithm` / `AbstractSensitivityAlgorithm` that have been
imported, so a method added to `gnode.algorithms` is found without touching this module, and so are an engine's
own methods once its module is loaded (`gnode.engines.get_engine("scipy")` brings `ScipyRadau()`). Names match
exactly first, then case-insensitively. Each value is checked against the annotation of the field it sets
(bool, int, float, str, an algorithm, or None where allowed): a wrong value is reported as such, with the
field and what it takes. Julia's `true`, `false` and `nothing` are accepted too. The text is parsed with `ast`,
never evaluated: only names, calls and literals are accepted.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import types
import typing

from gnode.algorithms.base import AbstractAlgorithm
from gnode.algorithms.sensealg import AbstractSensitivityAlgorithm

_WHAT = {AbstractAlgorithm: "solver", AbstractSensitivityAlgorithm: "sensealg"}
_EXAMPLES = {
    AbstractAlgorithm: ("Tsit5", "AutoTsit5(stiffalg=KenCarp4(kappa=0.02))"),
    AbstractSensitivityAlgorithm: ("BacksolveAdjoint", "InterpolatingAdjoint(checkpointing=True)"),
}
_JULIA = {"true": True, "false": False, "nothing": None}


class AlgorithmTextError(ValueError):
    """Text that does not describe an algorithm: an unknown name, a wrong option or value, or bad syntax."""


def parse_algorithm(text: str) -> AbstractAlgorithm:
    """The ODE algorithm that `text` names, e.g. "Tsit5", "Rodas5P()", "AutoTsit5(stiffalg=KenCarp4(kappa=0.02))"."""
    return _parse(text, AbstractAlgorithm)


def parse_sensealg(text: str) -> AbstractSensitivityAlgorithm:
    """The sensitivity algorithm that `text` names, e.g. "InterpolatingAdjoint(checkpointing=True)"."""
    return _parse(text, AbstractSensitivityAlgorithm)


def known(base: type = AbstractAlgorithm) -> dict[str, type]:
    """The concrete algorithm classes deriving from `base` that are imported now, by name (sorted).

    A name defined twice (e.g. by a test's stub) resolves to the class in a `gnode` module."""
    found: dict[str, type] = {}
    stack = list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        name = cls.__name__
        if name.startswith(("Abstract", "_")) or not dataclasses.is_dataclass(cls):
            continue
        ours = cls.__module__.startswith("gnode.")
        if name not in found or (ours and not found[name].__module__.startswith("gnode.")):
            found[name] = cls
    return dict(sorted(found.items()))


def _parse(text, base):
    what = _WHAT[base]
    if not isinstance(text, str) or not text.strip():
        raise AlgorithmTextError(f"{what}: expected a name such as {_EXAMPLES[base][0]}, got {text!r}")
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise AlgorithmTextError(
            f"{what}: cannot parse {text!r}; write a name such as {_EXAMPLES[base][0]} or a "
            f"call such as {_EXAMPLES[base][1]}"
        ) from None
    return _build(node, base, text)


def _build(node, base, text):
    what = _WHAT[base]
    if isinstance(node, ast.Name):
        cls, args, keywords = _lookup(node.id, base, text), [], []
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        cls, args, keywords = _lookup(node.func.id, base, text), node.args, node.keywords
    else:
        raise AlgorithmTextError(
            f"{what}: cannot understand {text!r}; write a name such as {_EXAMPLES[base][0]} "
            f"or a call such as {_EXAMPLES[base][1]}"
        )
    options = [f for f in dataclasses.fields(cls) if f.init]
    hints = _hints(cls)
    if len(args) > len(options):
        raise AlgorithmTextError(
            f"{what} {text!r}: {cls.__name__} takes {len(options)} positional argument(s) "
            f"at most ({_takes(options, hints)}), got {len(args)}"
        )
    kwargs = {}
    for f, arg in zip(options, args):
        kwargs[f.name] = _value(arg, cls, f.name, hints.get(f.name), text)
    by_name = {f.name: f for f in options}
    for kw in keywords:
        if kw.arg is None:
            raise AlgorithmTextError(f"{what} {text!r}: ** arguments are not accepted")
        if kw.arg not in by_name:
            hint = _close(kw.arg, by_name)
            raise AlgorithmTextError(
                f"{what} {text!r}: {cls.__name__} has no option {kw.arg!r}{hint}; it takes {_takes(options, hints)}"
            )
        if kw.arg in kwargs:
            raise AlgorithmTextError(f"{what} {text!r}: {kw.arg} is given twice")
        kwargs[kw.arg] = _value(kw.value, cls, kw.arg, hints.get(kw.arg), text)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:  # the class's own checks, e.g. AutoTsit5's stiffalg must be stiff
        raise AlgorithmTextError(f"{what} {text!r}: {e}") from None


def _value(node, cls, name, hint, text):
    """The value of option `name` of `cls` from its syntax `node`, checked against the field's annotation."""
    allowed = _allowed(hint)
    written = ast.get_source_segment(text.strip(), node) or ast.dump(node)
    if isinstance(node, ast.Name) and node.id in _JULIA:
        node = ast.Constant(_JULIA[node.id])
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, (ast.USub, ast.UAdd))
        and isinstance(node.operand, ast.Constant)
        and _is_number(node.operand.value)
    ):
        node = ast.Constant(-node.operand.value if isinstance(node.op, ast.USub) else node.operand.value)
    if isinstance(node, ast.Constant):
        v = node.value
        if not allowed:  # no usable annotation: take the literal as written
            return v
        if isinstance(v, int) and not isinstance(v, bool) and int not in allowed and float in allowed:
            return float(v)
        if type(v) in allowed:
            return v
    elif isinstance(node, (ast.Name, ast.Call)):
        algo_bases = [k for k in allowed if isinstance(k, type) and issubclass(k, tuple(_WHAT))]
        if algo_bases or not allowed:
            return _build(node, _root(algo_bases[0]) if algo_bases else AbstractAlgorithm, text)
    raise AlgorithmTextError(
        f"{_WHAT[_root(cls)]} {text!r}: {name}={written} is not a valid value; "
        f"{cls.__name__}({name}=...) takes {_describe(allowed)}"
    )


def _lookup(name, base, text):
    table = known(base)
    if name in table:
        return table[name]
    folded = {k.lower(): v for k, v in table.items()}
    if name.lower() in folded:
        return folded[name.lower()]
    what = _WHAT[base]
    other = next(b for b in _WHAT if b is not base)
    if name.lower() in {k.lower() for k in known(other)}:
        raise AlgorithmTextError(f"{what} {text!r}: {name} is a {_WHAT[other]}, not a {what}")
    raise AlgorithmTextError(f"unknown {what} {name!r}{_close(name, table)}; known: {', '.join(table)}")


def _hints(cls) -> dict:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve only loses the value check
        return {}


def _allowed(hint) -> list:
    """The plain kinds an annotation admits: bool, int, float, str, NoneType, algorithm classes ([]: unknown)."""
    if hint is None:
        return []
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [k for a in typing.get_args(hint) for k in _allowed(a)]
    plain = hint in (bool, int, float, str, type(None))
    if plain or (isinstance(hint, type) and issubclass(hint, tuple(_WHAT))):
        return [hint]
    return []


def _describe(allowed) -> str:
    names = {bool: "True or False", int: "an integer", float: "a number", str: "a string in quotes", type(None): "None"}
    parts = [names.get(k) or f"a {_WHAT[_root(k)]} such as {_EXAMPLES[_root(k)][0]}()" for k in allowed]
    return " or ".join(dict.fromkeys(parts)) or "a literal or an algorithm"


def _takes(options, hints) -> str:
    if not options:
        return "no options"
    return ", ".join(f"{f.name} ({_describe(_allowed(hints.get(f.name)))})" for f in options)


def _root(cls) -> type:
    return AbstractSensitivityAlgorithm if issubclass(cls, AbstractSensitivityAlgorithm) else AbstractAlgorithm


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _close(name, choices) -> str:
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""
