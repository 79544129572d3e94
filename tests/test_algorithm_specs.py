"""Algorithms and sensitivity algorithms as plain data: `to_spec()` / `from_spec()` (gnode.algorithms.base).

Every concrete class is found the way `from_spec` finds it (imported subclasses), so a method added later is
covered without touching this file: each must round-trip through JSON, at its defaults and with every option
changed, nested algorithms included.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

import gnode
import gnode.engines.scipy  # its ScipyRadau() etc. are algorithms too
from gnode.algorithms.base import AbstractAlgorithm, concrete_classes
from gnode.algorithms.sensealg import AbstractSensitivityAlgorithm


def gnode_classes(base) -> dict[str, type]:
    return {k: c for k, c in concrete_classes(base).items() if c.__module__.startswith("gnode.")}  # not tests' stubs


ALGORITHMS = gnode_classes(AbstractAlgorithm)
SENSEALGS = gnode_classes(AbstractSensitivityAlgorithm)


def default_instance(cls):
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(stiffalg=gnode.Rodas5P()) if "stiffalg" in fields else cls()


def changed(value, name):
    """Another valid value for option `name` (a test that fails here names an option this does not know)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2
    if isinstance(value, AbstractAlgorithm):
        return gnode.KenCarp4(kappa=0.02)
    if value is None and name == "alg":
        return gnode.Vern7()
    if value is None and name in ("reltol", "abstol"):
        return 1e-9
    if value is None and name == "kappa":
        return 0.05
    raise AssertionError(f"no other value known for option {name}={value!r}; extend tests/test_algorithm_specs.py")


def every_option_changed(obj):
    return dataclasses.replace(
        obj, **{f.name: changed(getattr(obj, f.name), f.name) for f in dataclasses.fields(obj) if f.init}
    )


def round_trip(obj, base):
    spec = json.loads(json.dumps(obj.to_spec()))
    return base.from_spec(spec)


@pytest.mark.parametrize(
    "cls", list(ALGORITHMS.values()) + list(SENSEALGS.values()), ids=list(ALGORITHMS) + list(SENSEALGS)
)
def test_every_algorithm_round_trips_through_json_with_all_its_options(cls):
    base = AbstractAlgorithm if issubclass(cls, AbstractAlgorithm) else AbstractSensitivityAlgorithm
    for obj in (default_instance(cls), every_option_changed(default_instance(cls))):
        spec = obj.to_spec()
        assert spec["name"] == cls.__name__
        assert set(spec["options"]) == {f.name for f in dataclasses.fields(cls) if f.init}
        back = round_trip(obj, base)
        assert type(back) is cls and back == obj and repr(back) == repr(obj)


def test_nested_algorithms_are_nested_specs():
    alg = gnode.AutoTsit5(stiffalg=gnode.KenCarp4(kappa=0.05), maxstiffstep=4)
    assert alg.to_spec() == {
        "name": "AutoTsit5",
        "options": {
            "stiffalg": {
                "name": "KenCarp4",
                "options": {"kappa": 0.05, "max_iter": 10, "fast_rate": 0.05, "smooth_est": False},
            },
            "maxstiffstep": 4,
            "maxnonstiffstep": 3,
            "nonstifftol": 0.9,
            "stifftol": 0.9,
            "stiffalgfirst": False,
        },
    }
    sense = gnode.InterpolatingAdjoint(alg=gnode.Rodas5P(), checkpointing=True)
    assert sense.to_spec()["options"]["alg"] == {"name": "Rodas5P", "options": {}}
    assert AbstractSensitivityAlgorithm.from_spec(sense.to_spec()) == sense


def test_bad_specs_are_refused_by_name():
    with pytest.raises(ValueError, match=r"KenCarp4\(\) has no option 'kapa'; its options are kappa, max_iter"):
        AbstractAlgorithm.from_spec({"name": "KenCarp4", "options": {"kapa": 0.1}})
    with pytest.raises(ValueError, match="no Algorithm is called 'Tsit6'; known: .*Tsit5"):
        AbstractAlgorithm.from_spec({"name": "Tsit6", "options": {}})
    with pytest.raises(ValueError, match="no SensitivityAlgorithm is called 'Tsit5'"):
        AbstractSensitivityAlgorithm.from_spec({"name": "Tsit5", "options": {}})
    with pytest.raises(ValueError, match="as to_spec\\(\\) writes it"):
        AbstractAlgorithm.from_spec("Tsit5()")
    with pytest.raises(ValueError, match="kappa must lie in"):  # the class's own checks still run
        AbstractAlgorithm.from_spec({"name": "KenCarp4", "options": {"kappa": 2.0}})
    with pytest.raises(ValueError, match=r"spec\.stiffalg: no Algorithm is called 'Foo'"):
        AbstractAlgorithm.from_spec({"name": "AutoTsit5", "options": {"stiffalg": {"name": "Foo", "options": {}}}})
