"""Comparisons at matched error: how much time (and how many f evaluations) each solver needs to reach the
same error as another, from their work-precision curves.

A solver's curve is its successful points (error, cost) over the tolerances. Cost at a target error is read
off the curve by linear interpolation in log-log coordinates (points sorted by error), only inside the range
of errors the curve covers — never extrapolated. Two curves are compared at `targets` log-spaced errors
across the range both cover; the ratio reported is the geometric mean over the targets of
cost(other) / cost(native), so > 1 means the native engine is cheaper at the same error.

Two kinds of comparison per problem and mode (forward: the solution error `metric`; gradient: the relative
gradient error):
  pairs     the same method in two packages (Tsit5 vs torchode Tsit5 / diffrax Tsit5, DP5 vs dopri5, ...),
            and the same kind of gradient (backprop through the solver, continuous adjoints);
  envelope  the best of each family at each error: for each target, the cheapest of the native engine's
            methods vs the cheapest of the peer's (each method within its own range).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from gnode.bench.measure import geometric_mean

NATIVE = "gnode[torch]"
COSTS = ("time", "nf", "f_calls")

# native method → {peer package: its method}: the same Runge–Kutta pair (or the closest named one)
TWINS = {
    "Tsit5()": {"torchode": "Tsit5", "diffrax": "Tsit5"},
    "DP5()": {"torchdiffeq": "dopri5", "torchode": "Dopri5", "diffrax": "Dopri5"},
    "BS3()": {"torchdiffeq": "bosh3", "diffrax": "Bosh3"},
    "Vern7()": {"torchdiffeq": "dopri8", "diffrax": "Dopri8"},
    "Kvaerno5()": {"diffrax": "Kvaerno5"},
    "RadauIIA5()": {"gnode": "ScipyRadau()"},  # the same method and algorithm (RADAU5), on the scipy engine
}
FIFTH_ORDER = {"Tsit5()", "DP5()", "Tsit5", "Dopri5", "dopri5"}  # gradients: compare any 5(4) pair with any
# native sensealg → peer sensealgs of the same kind (discretise-then-differentiate vs continuous adjoint)
GRADIENT_TWINS = {
    "BackpropAdjoint()": {
        "torchdiffeq": "backprop",
        "torchode": "AutoDiffAdjoint",
        "diffrax": "RecursiveCheckpointAdjoint",
    },
    "InterpolatingAdjoint()": {"torchdiffeq": "adjoint", "diffrax": "BacksolveAdjoint"},
    "BacksolveAdjoint()": {"torchdiffeq": "adjoint", "diffrax": "BacksolveAdjoint"},
}


def error_key(mode: str, metric: str) -> str:
    return "grad_error" if mode == "gradient" else metric


def curves(rows, metric: str) -> dict:
    """{(problem, mode): {solver label: {"family", "method", "sensealg", "points": [(err, time, nf, f_calls)]}}}"""
    out: dict = defaultdict(dict)
    for r in rows:
        if r.get("status") != "ok":
            continue
        err = r.get(error_key(r["mode"], metric))
        if err is None or not (err > 0 and math.isfinite(err)):
            continue
        c = out[(r["problem"], r["mode"])].setdefault(
            r["solver"],
            {
                "family": r["family"],
                "package": r["package"],
                "method": r["method"],
                "sensealg": r.get("sensealg"),
                "points": [],
            },
        )
        c["points"].append((err, r.get("time"), r.get("nf"), r.get("f_calls")))
    return out


def _interp(points, cost_index: int, log_err: float) -> float:
    pts = sorted((math.log10(p[0]), p[cost_index]) for p in points if p[cost_index] is not None and p[cost_index] > 0)
    if not pts:
        return float("nan")
    xs = np.array([p[0] for p in pts])
    ys = np.log10([p[1] for p in pts])
    if log_err < xs[0] - 1e-12 or log_err > xs[-1] + 1e-12:
        return float("nan")
    return float(10 ** np.interp(log_err, xs, ys))


def _range(points) -> tuple[float, float]:
    errs = [math.log10(p[0]) for p in points]
    return min(errs), max(errs)


def _targets(lo: float, hi: float, count: int) -> list[float]:
    if hi < lo:
        return []
    if hi - lo < 1e-9:
        return [lo]
    return list(np.linspace(lo, hi, count))


def compare_pair(a: dict, b: dict, targets: int = 5) -> dict | None:
    """cost(b) / cost(a) at matched error over the overlap of a's and b's error ranges (module docstring)."""
    lo_a, hi_a = _range(a["points"])
    lo_b, hi_b = _range(b["points"])
    ts = _targets(max(lo_a, lo_b), min(hi_a, hi_b), targets)
    if not ts:
        return None
    out = {"errors": [10**t for t in ts]}
    for i, cost in enumerate(COSTS, start=1):
        ratios = [_interp(b["points"], i, t) / _interp(a["points"], i, t) for t in ts]
        out[f"{cost}_ratios"] = ratios
        out[f"{cost}_ratio"] = geometric_mean(ratios)
    return out


def _envelope(family_curves: list[dict], cost_index: int, log_err: float) -> float:
    vals = [_interp(c["points"], cost_index, log_err) for c in family_curves]
    vals = [v for v in vals if math.isfinite(v)]
    return min(vals) if vals else float("nan")


def compare_all(rows, metric: str = "l2", targets: int = 5) -> dict:
    """Every pair and envelope comparison of the native engine with the other families (module docstring)."""
    result = {"metric": metric, "problems": {}}
    for (problem, mode), cs in curves(rows, metric).items():
        native = {k: c for k, c in cs.items() if c["family"] == NATIVE}
        if not native:
            continue
        entry = {"pairs": [], "envelope": []}
        for label, c in native.items():
            method = c["method"].split(" ")[0]  # "Tsit5() compiled PIController(...)": the same method
            twins = GRADIENT_TWINS.get(c["sensealg"], {}) if mode == "gradient" else TWINS.get(method, {})
            for other_label, o in cs.items():
                if o["family"] == NATIVE:
                    continue
                if mode == "gradient":
                    same_method = TWINS.get(method, {}).get(o["package"]) == o["method"] or (
                        method in FIFTH_ORDER and o["method"] in FIFTH_ORDER
                    )
                    if not (same_method and twins.get(o["package"]) == o["sensealg"]):
                        continue
                elif twins.get(o["package"]) != o["method"]:
                    continue
                cmp = compare_pair(c, o, targets)
                if cmp is not None:
                    entry["pairs"].append({"native": label, "other": other_label, **cmp})
        families = defaultdict(list)
        for c in cs.values():
            families[c["family"]].append(c)
        nat = families[NATIVE]
        lo_n = min(_range(c["points"])[0] for c in nat)
        hi_n = max(_range(c["points"])[1] for c in nat)
        for fam, fcs in families.items():
            if fam == NATIVE:
                continue
            lo = max(lo_n, min(_range(c["points"])[0] for c in fcs))
            hi = min(hi_n, max(_range(c["points"])[1] for c in fcs))
            ts = _targets(lo, hi, targets)
            if not ts:
                continue
            e = {"other": fam, "errors": [10**t for t in ts]}
            for i, cost in enumerate(COSTS, start=1):
                ratios = [_envelope(fcs, i, t) / _envelope(nat, i, t) for t in ts]
                e[f"{cost}_ratios"] = ratios
                e[f"{cost}_ratio"] = geometric_mean(ratios)
            entry["envelope"].append(e)
        result["problems"].setdefault(problem, {})[mode] = entry
    return result


def format_comparisons(comp: dict) -> str:
    """The comparisons as a text table (what `gnode bench` prints)."""
    lines = [
        (
            f"At matched error (forward: {comp['metric']}; gradient: relative gradient error), ratio = other / "
            "native (> 1: the native engine is cheaper); geometric mean over the common error range:"
        )
    ]
    head = f"  {'problem':16s} {'mode':8s} {'native':38s} {'other':40s} {'time':>7s} {'nf':>7s} {'f_calls':>7s}  errors"
    for problem, modes in comp["problems"].items():
        for mode, entry in modes.items():
            rows = [(p["native"], p["other"], p) for p in entry["pairs"]]
            rows += [("best of gnode[torch]", f"best of {e['other']}", e) for e in entry["envelope"]]
            if not rows:
                continue
            lines.append(head)
            for nat, other, p in rows:
                errs = p["errors"]
                lines.append(
                    f"  {problem:16s} {mode:8s} {nat[:38]:38s} {other[:40]:40s} {_fmt(p['time_ratio'])} "
                    f"{_fmt(p['nf_ratio'])} {_fmt(p['f_calls_ratio'])}  {errs[0]:.0e}..{errs[-1]:.0e}"
                )
    return "\n".join(lines)


def _fmt(x) -> str:
    return f"{x:7.2f}" if x is not None and math.isfinite(x) else "      -"
