"""House rules checked on the source: `ruff check` passes with the project's configuration (pyproject.toml: 120
columns, ruff's default rules, the line length and a complexity limit of 15), the tree is as `ruff format` leaves
it, and the check is real (a file with a fault fails);
imports go one way, between modules and between gnode's subpackages, counting imports inside functions (a lazy
import does not hide a cycle)."""

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def ruff(*args, cwd=ROOT):
    pytest.importorskip("ruff", reason="ruff is not installed (pip install -e '.[test]')")
    from ruff.__main__ import find_ruff_bin

    return subprocess.run([find_ruff_bin(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_the_tree_passes_ruff_check():
    done = ruff("check", "--no-cache", "python", "bridge", "tests", "benchmarks", "experiments")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_tree_is_formatted():
    done = ruff("format", "--check", "--no-cache", "python", "bridge", "tests", "benchmarks", "experiments")
    assert done.returncode == 0, "run `ruff format`: " + done.stdout[-4000:] + done.stderr[-2000:]


def test_ruff_check_fails_on_an_unused_import_and_a_too_complex_function(tmp_path):
    branches = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(16))
    bad = tmp_path / "bad.py"
    bad.write_text(f"import os\n\n\ndef f(x):\n{branches}    return -1\n")
    done = ruff("check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(bad), cwd=tmp_path)
    assert done.returncode == 1
    assert "F401" in done.stdout and "C901" in done.stdout and "(17 > 15)" in done.stdout, done.stdout


def import_graph(package: Path) -> dict[str, set[str]]:
    """{module: gnode modules it imports anywhere in its body} for the package folder `package` (…/gnode)."""
    modules = {}
    for f in package.rglob("*.py"):
        parts = f.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    graph = {}
    for name, f in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "gnode":
                for a in node.names:  # `from gnode.x import y`: the submodule y when there is one, else x
                    edges.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module)
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in modules)
        graph[name] = edges & set(modules) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan's algorithm, iterative)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    for root, targets in graph.items():
        if root in index:
            continue
        work = [(root, iter(targets))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, edges = work[-1]
            w = next(edges, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph.get(w, ()))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_imports_go_one_way():
    graph = import_graph(ROOT / "python" / "gnode")
    assert cycles(graph) == []
    packages: dict[str, set[str]] = {}  # gnode's subpackages and top-level modules: training -> analysis, not back
    for module, edges in graph.items():
        top = module.split(".")[1] if "." in module else None
        if top is not None:
            packages.setdefault(top, set()).update(e.split(".")[1] for e in edges if "." in e)
    assert cycles({k: v - {k} for k, v in packages.items()}) == []


def test_the_cycle_check_finds_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "gnode"
    (pkg / "a").mkdir(parents=True)
    (pkg / "b").mkdir()
    for f in ("__init__.py", "a/__init__.py", "b/__init__.py"):
        (pkg / f).write_text("")
    (pkg / "a" / "x.py").write_text("from gnode.b.y import g\n")
    (pkg / "b" / "y.py").write_text("def g():\n    from gnode.a import x\n    return x\n")
    assert cycles(import_graph(pkg)) == [["gnode.a.x", "gnode.b.y"]]
