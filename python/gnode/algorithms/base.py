"""Engine-free descriptions of algorithms: small immutable objects named as in OrdinaryDiffEq.jl."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass


class AbstractAlgorithm:
    """A method for du/dt = f(t, u). Concrete algorithms are frozen dataclasses; engines map them to steppers.

    order: of the propagated solution; error_order: of the embedded estimate (sets the step-size
    controller's exponents); adaptive: whether it has one.
    """

    order: int
    error_order: int | None
    adaptive: bool

    @property
    def name(self) -> str:
        """The OrdinaryDiffEq.jl name, e.g. "Tsit5"."""
        return type(self).__name__

    def __repr__(self) -> str:  # `Tsit5()`, as a user writes it
        fields = getattr(self, "__dataclass_fields__", {})
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in fields if getattr(self, k) != fields[k].default)
        return f"{self.name}({args})"

    def to_spec(self) -> dict:
        """This algorithm as plain data (JSON-able): {"name": "KenCarp4", "options": {"kappa": 0.01, ...}} with
        every option, nested algorithms as nested specs. What an engine outside Python receives."""
        return to_spec(self)

    @classmethod
    def from_spec(cls, spec: dict) -> AbstractAlgorithm:
        """The algorithm that `to_spec()` wrote (`AbstractAlgorithm.from_spec(alg.to_spec()) == alg`)."""
        return from_spec(cls, spec)


def to_spec(obj) -> dict:
    """A frozen-dataclass object (algorithm, sensitivity algorithm, or an option object built the same way) as
    {"name": class name, "options": {field: value}}: every field the constructor takes, nested dataclass objects as
    nested specs. Raises TypeError naming a field whose value has no plain-data form."""
    options = {}
    for f in dataclasses.fields(obj):
        if f.init:
            options[f.name] = _plain(getattr(obj, f.name), f"{type(obj).__name__}.{f.name}")
    return {"name": type(obj).__name__, "options": options}


def _plain(value, where: str):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_spec(value)
    raise TypeError(
        f"{where} = {value!r} has no plain-data form: options must be numbers, strings, booleans, None "
        "or dataclass objects"
    )


def from_spec(base: type, spec, where: str = "spec"):
    """The concrete subclass of `base` named by `spec` (as `to_spec` writes it), built with its options; a nested
    spec becomes an object of its field's annotated type. Unknown names and options are refused by name."""
    if not (isinstance(spec, dict) and set(spec) == {"name", "options"} and isinstance(spec["options"], dict)):
        raise ValueError(f"{where} must be {{'name': str, 'options': dict}} as to_spec() writes it, got {spec!r}")
    name, options = spec["name"], spec["options"]
    cls = concrete_classes(base).get(name)
    if cls is None:
        raise ValueError(
            f"{where}: no {base.__name__.removeprefix('Abstract')} is called {name!r}; known: "
            f"{', '.join(concrete_classes(base))}"
        )
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ValueError(f"{where}: {name}() has no option {unknown[0]!r}; its options are {', '.join(fields)}")
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve here; nested specs default below
        hints = {}
    kwargs = {
        k: from_spec(_option_base(hints.get(k)), v, f"{where}.{k}") if _is_spec(v) else v for k, v in options.items()
    }
    return cls(**kwargs)


def _is_spec(value) -> bool:
    return isinstance(value, dict) and set(value) == {"name", "options"}


def _option_base(hint) -> type:
    """The class a nested spec must name: the field's annotation (the non-None member of `X | None`), else an
    algorithm (the only nesting gnode's own classes use: `stiffalg`, `alg`)."""
    if isinstance(hint, type):
        return hint
    classes = [a for a in typing.get_args(hint) if isinstance(a, type) and a is not type(None)]
    return classes[0] if len(classes) == 1 else AbstractAlgorithm


def concrete_classes(base: type) -> dict[str, type]:
    """The concrete (frozen-dataclass, not `Abstract…`) subclasses of `base` imported now, by name; on a name clash
    (a test's stub) the class defined in a gnode module wins."""
    found: dict[str, type] = {}
    stack = list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__name__.startswith(("Abstract", "_")) or not dataclasses.is_dataclass(cls):
            continue
        old = found.get(cls.__name__)
        if old is None or (cls.__module__.startswith("gnode.") and not old.__module__.startswith("gnode.")):
            found[cls.__name__] = cls
    return dict(sorted(found.items()))


@dataclass(frozen=True, repr=False)
class AbstractTableauAlgorithm(AbstractAlgorithm):
    """A method given by its `tableau` (a property of each concrete class), which holds its orders."""

    @property
    def tableau(self):
        raise NotImplementedError

    @property
    def order(self) -> int:
        return self.tableau.order

    @property
    def error_order(self) -> int | None:
        return self.tableau.error_order

    @property
    def adaptive(self) -> bool:
        return self.tableau.adaptive


@dataclass(frozen=True, repr=False)
class AbstractExplicitRK(AbstractTableauAlgorithm):
    """An explicit Runge–Kutta method given by its `tableau` (a `ButcherTableau`)."""
