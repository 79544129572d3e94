"""Per-trajectory adaptivity: within a batch each trajectory has its own step size, accept/reject, counters and
return code, so a hard trajectory neither slows down nor perturbs an easy one."""

from __future__ import annotations

import pytest
import torch

import gnode
from helpers import ADAPTIVE, F64, ids


def decay(t, u):
    """y' = -k y with the rate k carried as a constant second state, so rows can have different rates."""
    y, k = u[:, 0], u[:, 1]
    return torch.stack([-k * y, torch.zeros_like(k)], dim=-1)


# rates 1 (easy) and 100 (stiff-ish: explicit methods are stability-limited to dt ~ 3/100 over [0, 5])
U0 = torch.tensor([[1.0, 1.0], [1.0, 100.0], [0.5, 1.0], [2.0, 100.0]], dtype=F64)
T1 = 5.0
EASY, HARD = [0, 2], [1, 3]
TOL = {"reltol": 1e-6, "abstol": 1e-8}
TWO = [m for m in ADAPTIVE if m.name in ("Tsit5", "Vern7")]  # FSAL; lazy interpolation stages


class Counting:
    """f that counts its evaluations: each call evaluates every row it is given once."""

    def __init__(self, f):
        self.f, self.calls = f, 0

    def __call__(self, t, u):
        self.calls += u.shape[0]
        return self.f(t, u)


@pytest.mark.parametrize("m", ADAPTIVE, ids=ids(ADAPTIVE))
def test_easy_trajectories_take_far_fewer_steps_than_stiff_ones(m):
    # a loose tolerance, where stability rather than accuracy limits the stiff rows' steps
    sol = gnode.solve(gnode.ODEProblem(decay, U0, (0.0, T1)), m.alg, reltol=1e-4, abstol=1e-6)
    naccept, nf = sol.stats.naccept, sol.stats.nf
    # measured steps (easy, hard): BS3 40/251, DP5 15/170, Tsit5 14/160, Vern7 9/116
    assert naccept[HARD].min() > 5 * naccept[EASY].max(), naccept.tolist()
    assert nf[HARD].min() > 5 * nf[EASY].max(), nf.tolist()
    assert (sol.retcodes == int(gnode.ReturnCode.Success)).all()
    assert torch.allclose(sol.u[:, -1, 0], U0[:, 0] * torch.exp(-T1 * U0[:, 1]), rtol=1e-3, atol=1e-5)


def within_tolerance(a: torch.Tensor, b: torch.Tensor, reltol: float, abstol: float, factor: float = 10.0) -> bool:
    """|a - b| <= factor (abstol + reltol |b|) everywhere: two solutions of one trajectory agree to the solve's
    tolerance. Not bit equality: in a batch, BLAS sums in another order, the embedded error estimate (which
    cancels heavily) sees that round-off, and the step sequence can change (issue 15, item 6)."""
    return bool(((a - b).abs() <= factor * (abstol + reltol * b.abs())).all())


@pytest.mark.parametrize("m", TWO, ids=ids(TWO))
def test_each_trajectory_is_solved_as_if_it_were_alone(m):
    saveat = torch.linspace(0, T1, 21, dtype=F64)
    batch = gnode.solve(gnode.ODEProblem(decay, U0, (0.0, T1)), m.alg, saveat=saveat, **TOL)
    exact = U0[:, None, 0] * torch.exp(-saveat[None] * U0[:, None, 1])
    for b in (EASY[0], HARD[0]):
        f = Counting(decay)
        alone = gnode.solve(gnode.ODEProblem(f, U0[b : b + 1], (0.0, T1)), m.alg, saveat=saveat, **TOL)
        assert within_tolerance(batch.u[b], alone.u[0], **TOL)
        assert within_tolerance(batch.u[b, :, 0], exact[b], **TOL)
        # its own steps, not the batch's: the counts alone and in the batch agree up to a changed step or two
        for name in ("nf", "naccept"):
            got, want = int(getattr(batch.stats, name)[b]), int(getattr(alone.stats, name)[0])
            assert abs(got - want) <= max(2, 0.1 * want) * (1 if name == "naccept" else len(m.alg.tableau.c)), (
                b,
                name,
                got,
                want,
            )
        # nf counts every evaluation of the step (the interpolant's lazy stages, one batched call each, aside)
        extra = len(m.alg.tableau.extra_c)
        assert alone.stats.nf[0] <= f.calls <= alone.stats.nf[0] + extra, (f.calls, alone.stats.nf[0])
    assert batch.stats.naccept[HARD[0]] > 5 * batch.stats.naccept[EASY[0]]  # the stiff row did not set the pace


def test_a_failing_trajectory_does_not_disturb_the_others():
    # u' = u^2 blows up at t = 1/u0: the row with u0 = 1 fails near t = 1, those with u0 <= 0.25 do not in [0, 2]
    square = lambda t, u: u * u
    u0 = torch.tensor([[0.25], [1.0], [-1.0]], dtype=F64)
    sol = gnode.solve(
        gnode.ODEProblem(square, u0, (0.0, 2.0)),
        gnode.Tsit5(),
        throw=False,
        saveat=torch.tensor([0.5, 2.0], dtype=F64),
        **TOL,
    )
    codes = [gnode.ReturnCode(int(c)) for c in sol.retcodes]
    assert codes[0] is gnode.ReturnCode.Success and codes[2] is gnode.ReturnCode.Success
    assert codes[1] is not gnode.ReturnCode.Success
    assert abs(float(sol.t_final[1]) - 1.0) < 1e-2
    assert torch.isnan(sol.u[1, 1]).all() and torch.isfinite(sol.u[1, 0]).all()  # saved before, NaN after
    for b in (0, 2):
        alone = gnode.solve(
            gnode.ODEProblem(square, u0[b : b + 1], (0.0, 2.0)),
            gnode.Tsit5(),
            saveat=torch.tensor([0.5, 2.0], dtype=F64),
            **TOL,
        )
        assert within_tolerance(sol.u[b], alone.u[0], **TOL)
        exact = u0[b, 0] / (1 - u0[b, 0] * torch.tensor([0.5, 2.0], dtype=F64))
        torch.testing.assert_close(sol.u[b, :, 0], exact, rtol=1e-5, atol=0)
