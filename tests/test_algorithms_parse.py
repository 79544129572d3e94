"""The one parser of algorithm text (gnode.algorithms.parse): every repr parses back to an equal object, options
and nested algorithms are checked against the classes' own fields, and wrong text says what is wrong."""

import pytest

import gnode
from gnode.algorithms.base import AbstractAlgorithm
from gnode.algorithms.parse import AlgorithmTextError, known, parse_algorithm, parse_sensealg
from gnode.algorithms.sensealg import AbstractSensitivityAlgorithm

SAMPLES = [
    gnode.Tsit5(),
    gnode.RK4(),
    gnode.KenCarp4(kappa=0.02, smooth_est=True),
    gnode.TRBDF2(max_iter=4),
    gnode.AutoTsit5(gnode.Rodas5P()),
    gnode.AutoVern7(stiffalg=gnode.Kvaerno5(), maxstiffstep=3),
    gnode.AutoTsit5(stiffalg=gnode.KenCarp4(kappa=0.02), nonstifftol=0.5),
]
SENSE = [
    gnode.BackpropAdjoint(),
    gnode.InterpolatingAdjoint(checkpointing=True),
    gnode.BacksolveAdjoint(alg=gnode.Vern7(), reltol=1e-8),
    gnode.QuadratureAdjoint(order=3, abstol=1e-9),
]


def test_every_algorithm_class_and_its_repr_parse_back():
    # every concrete class of gnode.algorithms, found without a list kept in the parser
    exported = {n for n in gnode.algorithms.__all__ if not n.startswith("Abstract")}
    assert exported <= set(known(AbstractAlgorithm)) | set(known(AbstractSensitivityAlgorithm))
    for name, cls in known(AbstractAlgorithm).items():
        if name.startswith("Auto"):
            continue  # needs its stiffalg: in SAMPLES
        alg = cls()
        assert parse_algorithm(name) == alg and parse_algorithm(repr(alg)) == alg
    for alg in SAMPLES:
        assert parse_algorithm(repr(alg)) == alg, repr(alg)
    for s in SENSE:
        assert parse_sensealg(repr(s)) == s, repr(s)


def test_names_calls_nested_options_and_julia_literals():
    assert parse_algorithm("tsit5()") == gnode.Tsit5()  # case-insensitive after an exact miss
    assert parse_algorithm("AutoTsit5(stiffalg=KenCarp4(kappa=0.02))") == gnode.AutoTsit5(gnode.KenCarp4(kappa=0.02))
    assert parse_sensealg("InterpolatingAdjoint(checkpointing=true)") == gnode.InterpolatingAdjoint(checkpointing=True)
    assert parse_sensealg("BacksolveAdjoint(reltol=1)").reltol == 1.0  # an int where a float is taken
    assert parse_sensealg("BacksolveAdjoint(alg=nothing)") == gnode.BacksolveAdjoint()


def test_a_class_defined_elsewhere_is_found_without_touching_the_parser():
    from gnode.engines import get_engine

    get_engine("scipy")  # loading the engine defines its own methods
    from gnode.engines.scipy import ScipyRadau

    assert parse_algorithm("ScipyRadau(jac=False)") == ScipyRadau(jac=False)


@pytest.mark.parametrize(
    ("text", "parse", "message"),
    [
        (
            "InterpolatingAdjoint(checkpointing=maybe)",
            parse_sensealg,
            r"checkpointing=maybe is not a valid value; InterpolatingAdjoint\(checkpointing=...\) takes True or False",
        ),
        ("QuadratureAdjoint(order=3.5)", parse_sensealg, r"order=3.5 is not a valid value.*takes an integer"),
        ("QuadratureAdjoint(order=true)", parse_sensealg, r"order=true is not a valid value.*takes an integer"),
        ("KenCarp4(kappa=-true)", parse_algorithm, r"kappa=-true is not a valid value.*takes a number"),
        ("BacksolveAdjoint(reltol='tight')", parse_sensealg, r"reltol='tight' is not a valid value.*a number or None"),
        (
            "InterpolatingAdjoint(checkpoint=True)",
            parse_sensealg,
            (
                r"has no option 'checkpoint' \(did you mean checkpointing\?\); "
                r"it takes alg .*checkpointing \(True or False\)"
            ),
        ),
        ("Tsit4", parse_algorithm, r"unknown solver 'Tsit4' \(did you mean Tsit5\?\); known: .*Tsit5"),
        ("Tsit5", parse_sensealg, "Tsit5 is a solver, not a sensealg"),
        ("BacksolveAdjoint(alg=BacksolveAdjoint())", parse_sensealg, "BacksolveAdjoint is a sensealg, not a solver"),
        ("AutoTsit5(stiffalg=Tsit5())", parse_algorithm, "stiffalg must be a stiff method"),  # the class's own check
        ("Tsit5(1)", parse_algorithm, r"Tsit5 takes 0 positional argument\(s\) at most \(no options\), got 1"),
        ("KenCarp4(kappa=0.1, kappa=0.2)", parse_algorithm, "kappa is given twice"),
        ("RK4(", parse_algorithm, "cannot parse 'RK4\\('"),
        ("", parse_algorithm, "expected a name such as Tsit5"),
        # parsed, never evaluated
        ("os.system('true')", parse_algorithm, "cannot understand"),
        ("__import__(name='os')", parse_algorithm, "unknown solver '__import__'"),
        ("Tsit5(**{'a': 1})", parse_algorithm, r"\*\* arguments are not accepted"),
    ],
)
def test_wrong_text_names_what_is_wrong(text, parse, message):
    with pytest.raises(AlgorithmTextError, match=message):
        parse(text)
