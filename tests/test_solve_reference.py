"""Adaptive solves of the native engine against independent float64 references.

Problems: a linear system (exact: the matrix exponential), a batch of random gnODEs, Van der Pol with
mu = 1, 3, 10 in one batch, Lotka–Volterra. References: SciPy DOP853 at rtol 1e-13 (default run) and SciPy
Radau at rtol 1e-12 (`slow`; the two agree to <= 2e-12 on these problems, also checked under `slow`).

Tolerances: BS3 runs at reltol 1e-6 (order 3 needs ~10^4 steps for 1e-8 on Van der Pol), the others at 1e-8;
abstol = reltol / 100. The global error is allowed `multiple` x reltol per problem; measured ratios
(error / reltol, max over methods): linear 0.8, gnODE 0.9, Van der Pol 100 (BS3; <= 6 for the others),
Lotka–Volterra 21 (BS3; <= 9 for the others). A global error is the sum of propagated local errors, so
problems that amplify perturbations (Van der Pol's fast transitions) need larger multiples.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import gnode
from helpers import (
    ADAPTIVE,
    LINEAR_A,
    GatedField,
    Method,
    expm,
    ids,
    linear_exact,
    linear_field,
    lv_field,
    lv_numpy,
    max_error,
    radau_reference,
    scipy_reference,
    vdp_field,
    vdp_numpy,
)


@dataclass(frozen=True)
class RefProblem:
    f: Callable
    u0: np.ndarray
    ts: np.ndarray
    numpy_fun: Callable | None  # None: exact solution known (linear)
    multiple: float


_GATED = GatedField(4, seed=1)
_RNG = np.random.default_rng(0)

PROBLEMS = {
    "linear": RefProblem(linear_field(LINEAR_A), _RNG.standard_normal((3, 3)), np.linspace(0, 5, 11), None, 4),
    "gnode": RefProblem(_GATED, _RNG.standard_normal((4, 4)), np.linspace(0, 10, 11), _GATED.numpy(), 4),
    "vanderpol": RefProblem(
        vdp_field,
        np.array([[2.0, 0.0, 1.0], [2.0, 0.0, 3.0], [2.0, 0.0, 10.0], [0.5, 0.5, 5.0]]),
        np.linspace(0, 10, 11),
        vdp_numpy,
        250,
    ),
    "lotkavolterra": RefProblem(lv_field, np.array([[1.0, 1.0], [2.0, 0.5]]), np.linspace(0, 10, 11), lv_numpy, 50),
}


def reltol_for(m: Method) -> float:
    return 1e-6 if m.name == "BS3" else 1e-8


@functools.cache
def reference(name: str, method: str = "DOP853") -> np.ndarray:
    p = PROBLEMS[name]
    if p.numpy_fun is None:
        return linear_exact(LINEAR_A, p.u0, p.ts)
    if method == "Radau":
        return radau_reference(p.numpy_fun, p.u0, p.ts)
    return scipy_reference(p.numpy_fun, p.u0, p.ts)


def solve(name: str, m: Method, reltol: float):
    p = PROBLEMS[name]
    prob = gnode.ODEProblem(p.f, torch.tensor(p.u0), (float(p.ts[0]), float(p.ts[-1])))
    return gnode.solve(prob, m.alg, reltol=reltol, abstol=reltol / 100, saveat=torch.tensor(p.ts))


# ---------------------------------------------------------------------------------- the references themselves


def test_exact_linear_solution_agrees_with_both_matrix_exponentials():
    u0 = PROBLEMS["linear"].u0
    ts = np.array([0.5, 1.0, 2.0, 5.0])  # where torch.linalg.matrix_exp is accurate in float64 (see helpers.expm)
    exact = linear_exact(LINEAR_A, u0, ts)
    A = torch.tensor(LINEAR_A)
    for k, t in enumerate(ts):
        assert np.abs(exact[:, k] - u0 @ expm(LINEAR_A, t).T).max() < 1e-14
        assert np.abs(exact[:, k] - (torch.tensor(u0) @ torch.linalg.matrix_exp(A * t).T).numpy()).max() < 1e-14


def test_dop853_reference_is_exact_to_1e_12_on_the_linear_system():
    p = PROBLEMS["linear"]
    ref = scipy_reference(lambda t, u: LINEAR_A @ u, p.u0, p.ts)
    assert np.abs(ref - reference("linear")).max() < 1e-12


# ------------------------------------------------------------------------------------------ the native engine


@pytest.mark.parametrize("m", ADAPTIVE, ids=ids(ADAPTIVE))
@pytest.mark.parametrize("name", list(PROBLEMS))
def test_adaptive_solution_within_a_multiple_of_the_tolerance(name, m):
    reltol = reltol_for(m)
    sol = solve(name, m, reltol)
    assert sol.retcode == gnode.ReturnCode.Success
    err = max_error(sol.u, reference(name))
    assert err <= PROBLEMS[name].multiple * reltol, f"{name}/{m.name}: error {err:.2e} at reltol {reltol:g}"
    assert err > 0  # a solver that returned the reference itself would be suspicious


@pytest.mark.parametrize("m", ADAPTIVE, ids=ids(ADAPTIVE))
def test_error_falls_with_the_tolerance(m):
    # 1000x tighter tolerances give at least 100x smaller errors (tolerance proportionality, with slack)
    loose, tight = (1e-3, 1e-6) if m.name == "BS3" else (1e-5, 1e-8)
    e_loose = max_error(solve("gnode", m, loose).u, reference("gnode"))
    e_tight = max_error(solve("gnode", m, tight).u, reference("gnode"))
    assert e_tight < e_loose / 100, (e_loose, e_tight)


# --------------------------------------------------------------------------------- against Radau (the design's)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in PROBLEMS if PROBLEMS[n].numpy_fun is not None])
def test_dop853_reference_agrees_with_radau(name):
    assert np.abs(reference(name, "Radau") - reference(name)).max() < 1e-10


@pytest.mark.slow
def test_radau_reference_matches_the_matrix_exponential():
    p = PROBLEMS["linear"]
    ref = radau_reference(lambda t, u: LINEAR_A @ u, p.u0, p.ts, jac=lambda t, u: LINEAR_A)
    assert np.abs(ref - reference("linear")).max() < 1e-11


@pytest.mark.slow
@pytest.mark.parametrize("m", ADAPTIVE, ids=ids(ADAPTIVE))
@pytest.mark.parametrize("name", [n for n in PROBLEMS if PROBLEMS[n].numpy_fun is not None])
def test_adaptive_solution_against_radau(name, m):
    reltol = reltol_for(m)
    err = max_error(solve(name, m, reltol).u, reference(name, "Radau"))
    assert err <= PROBLEMS[name].multiple * reltol, f"{name}/{m.name}: error {err:.2e} at reltol {reltol:g}"


@pytest.mark.slow
@pytest.mark.parametrize("m", ADAPTIVE, ids=ids(ADAPTIVE))
def test_tight_tolerance_reaches_1e_10_on_a_gnode_batch(m):
    reltol = 1e-8 if m.name == "BS3" else 1e-11
    err = max_error(solve("gnode", m, reltol).u, reference("gnode", "Radau"))
    assert err < (5e-8 if m.name == "BS3" else 1e-10), err
