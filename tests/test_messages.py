"""What a user is told when an input is odd or a solve fails: tolerances given as 0 or as 0-d tensors, a 2-D
saveat, an empty u0, printed return codes and an engine's own stiff methods in its hints."""

import pytest
import torch

import gnode
from gnode.retcode import ReturnCode, SolveError

D = torch.float64


def decay(t, u):
    return -u


def problem(dtype=D):
    return gnode.ODEProblem(decay, torch.ones(2, 3, dtype=dtype), (0.0, 1.0))


def test_reltol_zero_is_pure_absolute_error_control_and_a_too_small_one_names_its_fix():
    sol = gnode.solve(problem(), gnode.Tsit5(), reltol=0.0, abstol=1e-10)
    assert torch.allclose(sol.u[:, -1], torch.full((2, 3), torch.e**-1, dtype=D), rtol=0, atol=1e-8)
    with pytest.raises(ValueError, match=r"reltol=1e-17 is below what torch.float64 can resolve .*a looser reltol$"):
        gnode.solve(problem(), gnode.Tsit5(), reltol=1e-17)
    with pytest.raises(ValueError, match="below what torch.float32 can resolve .*use float64 or a looser reltol"):
        gnode.solve(problem(torch.float32), gnode.Tsit5(), reltol=1e-9)


def test_zero_dimensional_tensor_tolerances_act_as_their_numbers():
    a = gnode.solve(problem(), gnode.Tsit5(), reltol=torch.tensor(1e-3, dtype=D), abstol=torch.tensor(1e-6, dtype=D))
    b = gnode.solve(problem(), gnode.Tsit5(), reltol=1e-3, abstol=1e-6)
    assert torch.equal(a.u, b.u) and torch.equal(a.stats.nf, b.stats.nf)
    with pytest.raises(ValueError, match=r"reltol must be a finite number >= 0, got tensor\(\["):
        gnode.solve(problem(), gnode.Tsit5(), reltol=torch.tensor([1e-3, 1e-4]))


def test_a_two_dimensional_saveat_is_refused_not_flattened():
    times = torch.linspace(0, 1, 6, dtype=D)
    with pytest.raises(ValueError, match=r"saveat must be 1-D \(time,\), got shape \(2, 3\)"):
        gnode.solve(problem(), gnode.Tsit5(), saveat=times.reshape(2, 3))
    assert gnode.solve(problem(), gnode.Tsit5(), saveat=0.5).u.shape == (2, 1, 3)  # a number is one time


def test_an_empty_u0_is_refused_by_name():
    for shape, what in (((0, 3), "no trajectories"), ((2, 0), "no state components")):
        with pytest.raises(ValueError, match=rf"u0 has shape \({shape[0]}, {shape[1]}\), with {what}"):
            gnode.ODEProblem(decay, torch.zeros(shape, dtype=D), (0.0, 1.0))


def test_return_codes_print_their_names():
    sol = gnode.solve(problem(), gnode.Tsit5())
    assert str(sol.retcode) == "Success" and f"{sol.retcode}" == "Success" and f"{sol.retcode:>9}" == "  Success"
    assert int(sol.retcode) == 1 and sol.retcode == ReturnCode.Success  # still an IntEnum


def test_each_engine_is_told_of_its_own_stiff_methods():
    stiff = gnode.ODEProblem(lambda t, u: -1e6 * (u - torch.cos(t)[:, None]), torch.zeros(1, 1, dtype=D), (0.0, 1.0))
    with pytest.raises(SolveError) as e:
        gnode.solve(stiff, gnode.DP5(), engine="scipy", maxiters=50)
    assert e.value.retcode == ReturnCode.MaxIters
    assert "ScipyRadau()" in str(e.value) and "Rodas5P" not in str(e.value)
    with pytest.raises(SolveError) as e:
        gnode.solve(stiff, gnode.DP5(), maxiters=50)
    assert "Rodas5P()" in str(e.value) and "Scipy" not in str(e.value)
