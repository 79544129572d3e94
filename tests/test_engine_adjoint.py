"""Defects the peers' test suites found (issue 15), each pinned by a test that failed before the fix:
fields whose output does not depend on u, repeated backward through a retained graph, gradcheck for every
sensitivity algorithm, and BacksolveAdjoint on contracting dynamics (checkpointing, and the warning)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import gnode
from helpers import F64

SENSEALGS = [
    gnode.BacksolveAdjoint(),
    gnode.BacksolveAdjoint(checkpointing=True),
    gnode.InterpolatingAdjoint(),
    gnode.InterpolatingAdjoint(checkpointing=True),
    gnode.QuadratureAdjoint(),
]
SENSE_IDS = ["Backsolve", "Backsolve-ckpt", "Interpolating", "Interpolating-ckpt", "Quadrature"]
TIMES = torch.linspace(0.0, 1.0, 5, dtype=F64)


class Forcing(torch.nn.Module):
    """u' = a sin(t) for every component: the output does not depend on u (a zero Jacobian)."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(2.0, dtype=F64))
        self.unused = torch.nn.Parameter(torch.tensor(5.0, dtype=F64))  # never used: its gradient is zero

    def forward(self, t, u):
        return (self.a * torch.sin(t))[:, None].expand_as(u)


@pytest.mark.parametrize(
    "alg",
    [gnode.Rodas5P(), gnode.KenCarp4(), gnode.AutoTsit5(gnode.Rodas5P())],
    ids=["Rodas5P", "KenCarp4", "AutoTsit5"],
)
def test_stiff_methods_solve_a_field_that_ignores_u(alg):
    u0 = torch.tensor([[1.0, -1.0]], dtype=F64)
    for f in (Forcing(), lambda t, u: torch.zeros_like(u)):
        sol = gnode.solve(gnode.ODEProblem(f, u0, (0.0, 1.0)), alg, saveat=TIMES, reltol=1e-8, abstol=1e-10)
        a = 2.0 if isinstance(f, Forcing) else 0.0
        exact = u0[:, None, :] + a * (1 - torch.cos(TIMES))[None, :, None]
        torch.testing.assert_close(sol.u, exact, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("sensealg", SENSEALGS, ids=SENSE_IDS)
def test_adjoints_of_a_field_that_ignores_u_and_a_parameter(sensealg):
    f = Forcing()
    u0 = torch.tensor([[1.0, -1.0]], dtype=F64, requires_grad=True)
    sol = gnode.solve(
        gnode.ODEProblem(f, u0, (0.0, 1.0)), gnode.Tsit5(), saveat=TIMES, reltol=1e-9, abstol=1e-11, sensealg=sensealg
    )
    L = sol.u.sum()
    ga, gu, gunused = torch.autograd.grad(L, [f.a, u0, f.unused])
    # L = Σ_k Σ_i (u0_i + a (1 - cos t_k)): dL/da = 2 Σ_k (1 - cos t_k), dL/du0_i = 5
    assert math.isclose(float(ga), 2 * float((1 - torch.cos(TIMES)).sum()), rel_tol=1e-6)
    torch.testing.assert_close(gu, torch.full_like(u0, 5.0), rtol=1e-9, atol=1e-9)
    assert float(gunused) == 0.0


def _decaying_problem(u0, k):
    return gnode.ODEProblem(lambda t, u: -k * u + torch.sin(u), u0, (0.0, 1.0), params=[k])


@pytest.mark.parametrize("sensealg", SENSEALGS, ids=SENSE_IDS)
def test_backward_twice_through_a_retained_graph(sensealg):
    k = torch.tensor(1.5, dtype=F64, requires_grad=True)
    u0 = torch.tensor([[0.5, -0.3]], dtype=F64, requires_grad=True)
    sol = gnode.solve(
        _decaying_problem(u0, k), gnode.Tsit5(), saveat=TIMES, reltol=1e-8, abstol=1e-10, sensealg=sensealg
    )
    L = sol.u.square().sum()
    L.backward(retain_graph=True)
    first = (k.grad.clone(), u0.grad.clone())
    L.backward()
    torch.testing.assert_close(k.grad, 2 * first[0])
    torch.testing.assert_close(u0.grad, 2 * first[1])


@pytest.mark.parametrize("sensealg", [gnode.BackpropAdjoint(), *SENSEALGS], ids=["Backprop", *SENSE_IDS])
def test_gradcheck_passes_for_every_sensitivity_algorithm(sensealg):
    def saved(u0, k):
        return gnode.solve(
            _decaying_problem(u0, k), gnode.Tsit5(), saveat=TIMES, reltol=1e-12, abstol=1e-14, sensealg=sensealg
        ).u

    u0 = torch.tensor([[0.5, -0.3]], dtype=F64, requires_grad=True)
    k = torch.tensor(1.5, dtype=F64, requires_grad=True)
    # adjoints approximate the exact gradient to the solve's tolerance, not to round-off: gradcheck's atol.
    # fast_mode checks vᵀ J u for random u, v (one backward pass instead of one per output)
    assert torch.autograd.gradcheck(saved, (u0, k), eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)


def test_backsolve_on_contracting_dynamics_warns_and_checkpointing_fixes_it():
    # u' = -30 u + sin(u) contracts by e^-30 over [0, 1]: run backwards, every error grows by e^30
    k = torch.tensor(30.0, dtype=F64, requires_grad=True)
    u0 = torch.tensor([[1.0, -0.5]], dtype=F64, requires_grad=True)
    times = torch.linspace(0.0, 1.0, 11, dtype=F64)

    def gradient(sensealg):
        sol = gnode.solve(
            _decaying_problem(u0, k), gnode.Tsit5(), saveat=times, reltol=1e-6, abstol=1e-8, sensealg=sensealg
        )
        return torch.autograd.grad(sol.u.sum(), [u0, k])

    exact = gradient(gnode.InterpolatingAdjoint())
    with pytest.warns(RuntimeWarning, match="misses u0"):
        plain = gradient(gnode.BacksolveAdjoint())
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        checkpointed = gradient(gnode.BacksolveAdjoint(checkpointing=True))
    rel = lambda g: max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(g, exact))
    assert rel(plain) > 1e-2  # the drifted reconstruction spoils the plain gradient
    assert rel(checkpointed) < 1e-4
