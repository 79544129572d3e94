"""Gradients of a solve with respect to the parameters of f, u0 and the input values.

BackpropAdjoint (autograd through the solver) against central finite differences in float64 and
`torch.autograd.gradcheck`; every continuous adjoint against BackpropAdjoint at tight tolerances. Losses weigh
interior saved points as well as the last one, so the adjoint's jumps at saved times are exercised.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import gnode
from helpers import F64, GatedField

N, DIM = 2, 2
TSPAN = (0.0, 2.0)
SAVEAT = torch.tensor([0.5, 1.25, 2.0], dtype=F64)
TIMES = torch.linspace(0, 2, 5, dtype=F64)
_g = torch.Generator().manual_seed(11)
U0 = 0.5 * torch.randn(2, N, generator=_g, dtype=F64)
VALUES = torch.randn(2, TIMES.numel(), DIM, generator=_g, dtype=F64)
WEIGHTS = torch.randn(2, SAVEAT.numel(), N, generator=_g, dtype=F64)

# "Tight" for the adjoint comparison: at reltol 1e-8 every adjoint agrees with backprop to <= 3e-9 relative
# (measured; 1e-10 gives <= 1e-10), so 1e-6 leaves a wide margin while keeping the tests fast.
TIGHT = {"reltol": 1e-8, "abstol": 1e-10}
ADJOINTS = [
    gnode.BacksolveAdjoint(),
    gnode.InterpolatingAdjoint(),
    gnode.InterpolatingAdjoint(checkpointing=True),
    gnode.QuadratureAdjoint(),
]
ADJOINT_IDS = ["Backsolve", "Interpolating", "InterpolatingCheckpointed", "Quadrature"]


def make(kind: str | None, u0=U0, values=VALUES, field=None):
    """The problem: a small gnODE, with inputs when `kind` names an interpolation."""
    field = field or GatedField(N, DIM if kind else 0, gain=1.3, seed=5)
    inputs = None if kind is None else gnode.Control(TIMES, values, interpolation=kind)
    return gnode.ODEProblem(field, u0, TSPAN, inputs=inputs), field


def loss_of(sol) -> torch.Tensor:
    return (WEIGHTS * sol.u).sum()


def gradients(kind, alg, sensealg=None, tspan=TSPAN, saveat=SAVEAT, **kw):
    """dL/d(params), dL/du0, dL/d(values) (None without inputs), each flattened into one vector."""
    u0 = U0.clone().requires_grad_(True)
    values = VALUES.clone().requires_grad_(kind is not None)
    prob, field = make(kind, u0, values)
    prob = gnode.ODEProblem(prob.f, prob.u0, tspan, inputs=prob.inputs)
    sol = gnode.solve(prob, alg, saveat=saveat, sensealg=sensealg, **kw)
    params = list(field.parameters())
    wrt = params + [u0] + ([values] if kind is not None else [])
    grads = torch.autograd.grad(loss_of(sol), wrt)
    flat = lambda gs: torch.cat([g.reshape(-1) for g in gs])
    return (
        flat(grads[: len(params)]),
        grads[len(params)].reshape(-1),
        (grads[-1].reshape(-1) if kind is not None else None),
        sol,
    )


def directional_differences(kind, alg, eps, directions: int = 2, **kw):
    """Central differences of the loss along `directions` random unit directions in each of the three groups
    (params, u0, values) → per group a (directions,) tensor, and the directions themselves."""
    _prob, field = make(kind)
    params = list(field.parameters())
    base = [p.detach().clone() for p in params]
    g = torch.Generator().manual_seed(99)

    def loss(dparams=None, du0=0.0, dvalues=0.0):
        with torch.no_grad():
            for p, b, d in zip(params, base, dparams or [0.0] * len(params)):
                p.copy_(b + d)
            p_, _ = make(kind, U0 + du0, VALUES + dvalues, field)
            out = float(loss_of(gnode.solve(p_, alg, saveat=SAVEAT, **kw)))
            for p, b in zip(params, base):
                p.copy_(b)
        return out

    def unit(*shapes):
        v = [torch.randn(sh, generator=g, dtype=F64) for sh in shapes]
        norm = torch.sqrt(sum((x * x).sum() for x in v))
        return [x / norm for x in v]

    result = {}
    for group in ("params", "u0", "values"):
        if group == "values" and kind is None:
            result[group] = None
            continue
        dirs, slopes = [], []
        for _ in range(directions):
            if group == "params":
                v = unit(*[p.shape for p in params])
                up, down = loss(dparams=[eps * x for x in v]), loss(dparams=[-eps * x for x in v])
                v = torch.cat([x.reshape(-1) for x in v])
            elif group == "u0":
                (v,) = unit(U0.shape)
                up, down = loss(du0=eps * v), loss(du0=-eps * v)
            else:
                (v,) = unit(VALUES.shape)
                up, down = loss(dvalues=eps * v), loss(dvalues=-eps * v)
            dirs.append(v.reshape(-1))
            slopes.append((up - down) / (2 * eps))
        result[group] = (torch.stack(dirs), torch.tensor(slopes, dtype=F64))
    return result


def check_directional(got, want, bound):
    for name, g in zip(("params", "u0", "values"), got):
        if want[name] is None:
            continue
        dirs, slopes = want[name]
        err = float((dirs @ g - slopes).abs().max() / g.norm())
        assert err < bound, f"dL/d{name}: directional derivatives differ by {err:.2e} (relative to |grad|)"


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ------------------------------------------------------------------------------------ backprop against FD


@pytest.mark.parametrize("kind", [None, "zoh", "cubic"])
def test_backprop_through_a_fixed_step_solve_equals_central_differences(kind):
    # RK4 with a fixed step is a smooth map of (params, u0, values): its exact derivative is what backprop gives
    got = gradients(kind, gnode.RK4(), dt=0.1)[:3]
    want = directional_differences(kind, gnode.RK4(), 1e-5, dt=0.1)
    check_directional(got, want, 1e-8)


@pytest.mark.parametrize("kind", [None])
def test_backprop_through_an_adaptive_solve_equals_the_true_gradient(kind):
    # central differences of a solve at reltol 1e-12 approximate the exact solution's gradient (error ~1e-8 from
    # eps^2 and ~1e-8 from the tolerance / eps); backprop at 1e-10 differentiates a solution that close to it
    got = gradients(kind, gnode.Tsit5(), reltol=1e-10, abstol=1e-12)[:3]
    want = directional_differences(kind, gnode.Tsit5(), 1e-4, directions=1, reltol=1e-12, abstol=1e-14)
    check_directional(got, want, 1e-6)


def test_gradcheck_fixed_step():
    field = GatedField(N, DIM, gain=1.3, seed=5)

    def fn(u0, W, values):
        field.W.data = W.detach()  # keep the module's parameter, differentiate through a functional copy
        control = gnode.Control(TIMES, values, interpolation="cubic")
        f = lambda t, h, x: (
            torch.sigmoid(h @ field.Wz.T + field.bz + x @ field.Uz.T)
            * (-h + torch.tanh(h @ W.T + field.b + x @ field.U.T))
        )
        prob = gnode.ODEProblem(f, u0, TSPAN, inputs=control)
        return gnode.solve(prob, gnode.RK4(), dt=0.25, saveat=SAVEAT).u

    args = (
        U0[:1].clone().requires_grad_(True),
        field.W.detach().clone().requires_grad_(True),
        VALUES[:1].clone().requires_grad_(True),
    )
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_gradcheck_adaptive_at_tight_tolerance():
    A = torch.tensor([[-0.5, 1.0], [-1.0, -0.3]], dtype=F64)

    def fn(u0, A):
        prob = gnode.ODEProblem(lambda t, u: torch.tanh(u @ A.T), u0, (0.0, 1.0), params=[A])
        return gnode.solve(prob, gnode.Tsit5(), saveat=[0.5, 1.0], reltol=1e-12, abstol=1e-14).u

    # step sizes change with the perturbation, so central differences see the tolerance (~1e-12 / eps)
    assert torch.autograd.gradcheck(
        fn, (U0[:1].clone().requires_grad_(True), A.clone().requires_grad_(True)), eps=1e-6, atol=1e-5, rtol=1e-4
    )


# ----------------------------------------------------------------------------- adjoints against backprop


@functools.cache
def backprop(kind, alg_name="Tsit5"):
    return gradients(kind, getattr(gnode, alg_name)(), **TIGHT)


@pytest.mark.parametrize("sensealg", ADJOINTS, ids=ADJOINT_IDS)
@pytest.mark.parametrize("kind", [None, "zoh", "linear", "cubic"])
def test_continuous_adjoint_agrees_with_backprop(sensealg, kind):
    want = backprop(kind)
    got = gradients(kind, gnode.Tsit5(), sensealg, **TIGHT)
    for name, g, w in zip(("params", "u0", "values"), got[:3], want[:3]):
        if w is not None:
            assert rel(g, w) < 1e-6, f"{sensealg!r} {kind}: dL/d{name} relative difference {rel(g, w):.2e}"
    torch.testing.assert_close(got[3].u, want[3].u, rtol=0, atol=0)  # the forward solution is the same
    stats = got[3].adjoint_stats
    assert stats is not None and (stats.nf > 0).all() and (stats.naccept > 0).all()


@pytest.mark.parametrize("sensealg", ADJOINTS, ids=ADJOINT_IDS)
def test_continuous_adjoint_with_one_input_shared_by_the_batch(sensealg):
    def grads(sensealg):
        values = VALUES[:1].clone().requires_grad_(True)  # batch 1: the same input for both trajectories
        prob, field = make("linear", U0, values)
        sol = gnode.solve(prob, gnode.Tsit5(), saveat=SAVEAT, sensealg=sensealg, **TIGHT)
        return torch.autograd.grad(loss_of(sol), [values, *field.parameters()])

    for g, w in zip(grads(sensealg), grads(None)):
        assert rel(g, w) < 1e-6, f"{sensealg!r}: relative difference {rel(g, w):.2e}"


@pytest.mark.parametrize("sensealg", ADJOINTS, ids=ADJOINT_IDS)
def test_continuous_adjoint_of_a_backward_solve(sensealg):
    saveat = torch.tensor([1.5, 0.7, 0.0], dtype=F64)
    want = gradients("zoh", gnode.Tsit5(), tspan=(2.0, 0.0), saveat=saveat, **TIGHT)
    got = gradients("zoh", gnode.Tsit5(), sensealg, tspan=(2.0, 0.0), saveat=saveat, **TIGHT)
    for name, g, w in zip(("params", "u0", "values"), got[:3], want[:3]):
        assert rel(g, w) < 1e-6, f"{sensealg!r}: dL/d{name} relative difference {rel(g, w):.2e}"


def test_continuous_adjoint_with_vern7():
    # Vern7's dense output needs lazily evaluated stages, which the adjoint's u(t) lookups must get right
    sensealg = gnode.InterpolatingAdjoint()
    want = backprop("linear", "Vern7")
    got = gradients("linear", gnode.Vern7(), sensealg, **TIGHT)
    for name, g, w in zip(("params", "u0", "values"), got[:3], want[:3]):
        assert rel(g, w) < 1e-6, f"{sensealg!r}: dL/d{name} relative difference {rel(g, w):.2e}"


def test_adjoint_gradients_converge_to_backprop_as_tolerances_tighten():
    want = gradients(None, gnode.Tsit5(), reltol=1e-11, abstol=1e-13)[0]
    errs = [
        rel(gradients(None, gnode.Tsit5(), gnode.InterpolatingAdjoint(), reltol=r, abstol=r / 100)[0], want)
        for r in (1e-5, 1e-8)
    ]
    assert errs[1] < errs[0] / 30, errs


def test_gradients_flow_only_where_asked():
    # a solve with nothing requiring grad records no graph
    prob, _ = make(None)
    for p in prob.params:
        p.requires_grad_(False)
    sol = gnode.solve(gnode.ODEProblem(prob.f, U0, TSPAN, params=()), gnode.Tsit5(), saveat=SAVEAT)
    assert sol.u.grad_fn is None and not sol.u.requires_grad
    assert np.isfinite(sol.u.numpy()).all()
