"""The contract between the bridge and the Julia module, checked from both sides without Julia.

The Julia sources are parsed with tree-sitter-julia; the tables they define (entry points and their
arities, algorithm names, return codes, statistics, VJP and sensealg names, activation and
interpolation names) must equal `gnode_bridge.contract` and gnode's own definitions, and the Julia
environment (Project.toml) must list exactly what juliapkg installs and every package the sources use.
"""

from __future__ import annotations

import inspect
import json
import re
import tomllib
from pathlib import Path

import pytest

from gnode_bridge import contract
from gnode_bridge.testing import StandInJulia

ROOT = Path(__file__).resolve().parents[1]
JULIA = ROOT / "julia"

tree_sitter = pytest.importorskip("tree_sitter", reason="tree-sitter is needed to parse the Julia sources")
tsj = pytest.importorskip("tree_sitter_julia", reason="tree-sitter-julia is needed to parse the Julia sources")
PARSER = tree_sitter.Parser(tree_sitter.Language(tsj.language()))


def parse(path: Path):
    src = path.read_bytes()
    return PARSER.parse(src).root_node, src


def text(node, src: bytes) -> str:
    return src[node.start_byte : node.end_byte].decode()


def walk(node):
    yield node
    for c in node.children:
        yield from walk(c)


def julia_functions() -> dict[str, int]:
    """name -> number of positional parameters, for every function defined in julia/ (long or short form)."""
    found: dict[str, int] = {}
    for path in sorted(JULIA.rglob("*.jl")):
        root, src = parse(path)
        for node in walk(root):
            call = None
            if node.type == "function_definition":
                sig = next((c for c in node.children if c.type == "signature"), None)
                call = next((c for c in sig.children if c.type == "call_expression"), None) if sig else None
            elif node.type == "assignment" and node.children and node.children[0].type == "call_expression":
                call = node.children[0]
            if call is None or call.children[0].type != "identifier":
                continue
            args = next(c for c in call.children if c.type == "argument_list")
            params = [c for c in args.children if c.type not in ("(", ")", ",")]
            found.setdefault(text(call.children[0], src), len(params))
    return found


def julia_const(path: Path, name: str):
    """The `const name = ...` of a Julia file: a Dict of string/int pairs, or a tuple of strings/symbols."""
    root, src = parse(path)
    for node in walk(root):
        if node.type != "const_statement":
            continue
        assign = node.children[1]
        if text(assign.children[0], src) != name:
            continue
        value = assign.children[2]
        if value.type == "tuple_expression":
            return tuple(text(c, src).lstrip(":").strip('"') for c in value.children if c.type not in ("(", ")", ","))
        pairs = {}
        for pair in walk(value):
            if pair.type == "binary_expression" and text(pair.children[1], src) == "=>":
                key = text(pair.children[0], src).strip('"')
                pairs[key] = text(pair.children[2], src)
        return pairs
    raise AssertionError(f"{path.name} defines no const {name}")


def test_every_julia_file_parses_without_errors():
    files = sorted(JULIA.rglob("*.jl"))
    assert len(files) >= 10
    for path in files:
        root, _ = parse(path)
        bad = [n.start_point for n in walk(root) if n.type == "ERROR" or n.is_missing]
        assert not bad, f"{path.relative_to(ROOT)}: parse errors at (row, col) {bad[:5]}"


def test_julia_defines_every_entry_point_with_the_contract_arity():
    functions = julia_functions()
    for name, arity in contract.ENTRY_POINTS.items():
        assert name in functions, f"julia/ defines no function {name}"
        assert functions[name] == arity, f"{name} takes {functions[name]} arguments in Julia, contract says {arity}"


def test_standin_methods_have_the_contract_arity():
    for name, arity in contract.ENTRY_POINTS.items():
        method = getattr(StandInJulia, name.rstrip("!"))
        params = list(inspect.signature(method).parameters)[1:]  # drop self
        assert len(params) == arity, f"StandInJulia.{name.rstrip('!')} takes {len(params)}, contract says {arity}"


def test_contract_docstring_lists_the_solve_arguments_in_order():
    """The documented signature of solve_forward! names exactly as many arguments as the Julia function."""
    doc = contract.__doc__
    block = doc[doc.index("solve_forward!(") + len("solve_forward!(") : doc.index(") -> Int (handle)")]
    names = [a.strip() for a in block.replace("\n", " ").split(",") if a.strip()]
    assert len(names) == contract.ENTRY_POINTS["solve_forward!"]
    root, src = parse(JULIA / "src" / "entry.jl")
    for node in walk(root):
        if node.type == "function_definition" and "solve_forward!" in text(node.children[1], src):
            args = text(node.children[1], src)
            julia_names = [a.strip() for a in args[args.index("(") + 1 : args.rindex(")")].split(",") if a.strip()]
            assert julia_names == names
            return
    raise AssertionError("entry.jl has no solve_forward!")


def test_algorithm_tables_agree_and_cover_gnodes_explicit_methods():
    import gnode.algorithms as algs

    julia = julia_const(JULIA / "src" / "algorithms.jl", "ALGORITHMS")
    assert set(julia) == set(contract.ALGORITHMS)
    for name in (
        "Euler",
        "Midpoint",
        "RK4",
        "BS3",
        "DP5",
        "Tsit5",
        "Vern7",
        "Rodas5P",
        "KenCarp4",
        "FBDF",
        "RadauIIA5",
        "AutoTsit5",
    ):
        assert name in julia
    # the stiff method of an AutoSwitch is built from its nested spec, not fixed to Rodas5P()
    assert julia["AutoTsit5"].replace(" ", "") == "s->AutoTsit5(stiff_method(s);auto_options(s)...)"
    for name, (adaptive, _) in contract.ALGORITHMS.items():
        cls = getattr(algs, name, None)
        if cls is not None:
            alg = cls(algs.Rodas5P()) if name.startswith("Auto") else cls()  # Auto* take their stiff method
            assert alg.adaptive == adaptive, name


def string_tuple(path: Path, value: str) -> tuple[str, ...]:
    """A Julia tuple of strings, written literally or as the name of a const tuple in the same file."""
    if re.fullmatch(r"[A-Z_]+", value):
        return julia_const(path, value)
    return tuple(re.findall(r'"([^"]*)"', value))


def test_option_tables_agree_with_julia():
    algs = JULIA / "src" / "algorithms.jl"
    julia = {k: set(string_tuple(algs, v)) for k, v in julia_const(algs, "ALGORITHM_OPTIONS").items()}
    assert julia == {k: set(v) for k, v in contract.ALGORITHM_OPTIONS.items() if v}
    sens = JULIA / "src" / "sensitivity.jl"
    julia = {k: set(string_tuple(sens, v)) for k, v in julia_const(sens, "SENSEALG_OPTIONS").items()}
    assert julia == {k: set(v) for k, v in contract.SENSEALG_OPTIONS.items()}
    assert set(contract.ALGORITHM_OPTIONS) == set(contract.ALGORITHMS)
    assert set(contract.SENSEALG_OPTIONS) == set(contract.SENSEALGS)
    assert set(julia_const(sens, "CONTINUOUS_ADJOINTS")) == set(contract.CONTINUOUS_ADJOINTS)


def test_every_option_of_gnodes_algorithms_is_forwarded_or_explained():
    """An option the lead adds to a gnode algorithm must be decided for the Julia engine: forwarded (with its
    SciML keyword, in contract.ALGORITHM_OPTIONS / SENSEALG_OPTIONS and the Julia builder) or listed in
    contract.NOT_FORWARDED with the reason (then it is accepted at its default only)."""
    import dataclasses

    import gnode.algorithms as algs

    for tables in (contract.ALGORITHM_OPTIONS, contract.SENSEALG_OPTIONS):
        for name, forwarded in tables.items():
            cls = getattr(algs, name, None)
            if cls is None:
                continue
            options = {f.name for f in dataclasses.fields(cls) if f.init}
            unexplained = options - set(forwarded) - {k for n, k in contract.NOT_FORWARDED if n == name}
            assert not unexplained, f"{name}: options {sorted(unexplained)} are neither forwarded nor explained"
            assert set(forwarded) <= options | {"checkpointing"}, f"{name}: forwards options it does not have"


def test_the_options_record_has_the_same_fields_in_julia():
    import dataclasses

    root, src = parse(JULIA / "src" / "request.jl")
    for node in walk(root):
        if node.type == "struct_definition" and "Request" in text(node, src).splitlines()[0]:
            fields = re.findall(r"^\s+(\w+)::", text(node, src), flags=re.MULTILINE)
            assert fields == [f.name for f in dataclasses.fields(contract.Request)]
            return
    raise AssertionError("request.jl defines no struct Request")


def test_the_options_record_round_trips_through_json_and_refuses_unknown_fields():
    req = contract.Request(
        model={"n": 2},
        t0=0.0,
        t1=1.5,
        saveat=[0.0, 0.1 + 0.2, 1.5],
        input_times=[],
        interpolation="zoh",
        alg={"name": "Tsit5", "options": {}},
        sensealg=None,
        vjp="auto",
        reltol=1e-6,
        abstol=1e-8,
        dt=None,
        dtmin=1e-12,
        dtmax=None,
        maxiters=10,
        tstops=[0.5],
        keep=False,
        mode="ensemble",
    )
    assert contract.Request.from_json(req.to_json()) == req  # floats exactly (shortest repr round-trips)
    with pytest.raises(ValueError, match=r"unknown fields \['colour'\]"):
        contract.Request.from_json(req.to_json()[:-1] + ', "colour": 1}')
    with pytest.raises(ValueError, match="Out of range float"):
        import dataclasses

        dataclasses.replace(req, dtmax=float("inf")).to_json()


def test_retcodes_stats_and_names_agree_with_gnode():
    from gnode.models.activations import ACTIVATIONS
    from gnode.problem import INTERPOLATIONS
    from gnode.retcode import ReturnCode
    from gnode.solution import STAT_NAMES

    assert contract.RETCODES == {r.name: int(r) for r in ReturnCode}
    julia_codes = julia_const(JULIA / "src" / "algorithms.jl", "RETCODES")
    assert {k: int(v) for k, v in julia_codes.items()} == contract.RETCODES
    assert contract.STAT_NAMES == STAT_NAMES
    assert julia_const(JULIA / "src" / "algorithms.jl", "STAT_NAMES") == STAT_NAMES
    assert set(julia_const(JULIA / "src" / "activations.jl", "ACTIVATION_CODES")) == set(ACTIVATIONS)
    assert set(julia_const(JULIA / "src" / "inputs.jl", "INTERPOLATION_CODES")) == set(INTERPOLATIONS)


def test_sensealg_and_vjp_names_agree():
    sens = (JULIA / "src" / "sensitivity.jl").read_text()
    julia_sense = set(julia_const(JULIA / "src" / "sensitivity.jl", "CONTINUOUS_ADJOINTS")) | set(
        julia_const(JULIA / "src" / "sensitivity.jl", "FORWARD_MODE")
    )
    assert julia_sense == set(contract.SENSEALGS)
    for vjp in contract.VJPS:
        assert f'name == "{vjp}"' in sens, f"vjp_choice does not handle {vjp}"
    import gnode.algorithms as algs

    for cls in algs.sensealg.SENSEALGS:
        assert cls.__name__ in contract.SENSEALGS, f"gnode's {cls.__name__} has no Julia counterpart"


def test_project_toml_and_juliapkg_json_list_the_same_packages():
    project = tomllib.loads((ROOT / "Project.toml").read_text())
    pkg = json.loads((ROOT / "bridge" / "gnode_bridge" / "juliapkg.json").read_text())
    assert pkg["julia"] == project["compat"]["julia"]
    assert {k: v["uuid"] for k, v in pkg["packages"].items()} == project["deps"]
    assert {k: v["version"] for k, v in pkg["packages"].items()} == {
        k: v for k, v in project["compat"].items() if k != "julia"
    }
    for name in project["deps"]:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", project["deps"][name])


def test_every_package_the_sources_use_is_a_dependency():
    project = tomllib.loads((ROOT / "Project.toml").read_text())
    used = set()
    for path in JULIA.rglob("*.jl"):
        root, src = parse(path)
        for node in walk(root):
            if node.type in ("using_statement", "import_statement"):
                head = text(node, src).split(None, 1)[1]
                used.add(re.split(r"[:\s,.]", head, maxsplit=1)[0])
    assert used, "no using/import statements found"
    missing = used - set(project["deps"])
    assert not missing, f"julia/ uses {sorted(missing)} but Project.toml does not list them"
