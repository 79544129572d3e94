"""dtype and device follow u0: float32 and float64 solves, gradients and inputs; CUDA (marker `gpu`) against CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gnode
from helpers import F64, LINEAR_A, METHODS, GatedField, ids, linear_exact

U0 = np.array([[1.0, -0.5, 0.25], [0.3, 0.8, -1.0]])
TIMES = np.linspace(0, 2, 5)
SAVEAT = np.array([0.0, 0.7, 2.0])

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def linear_problem(dtype, device="cpu"):
    return gnode.ODEProblem(_linear(dtype, device), torch.tensor(U0, dtype=dtype, device=device), (0.0, 2.0))


def _linear(dtype, device):
    At = torch.tensor(LINEAR_A, dtype=dtype, device=device).T.contiguous()
    return lambda t, u: u @ At


ERROR_LIMITS = {"Euler": (1e-2, 1e-2), "Midpoint": (1e-4, 1e-4), "RK4": (1e-5, 1e-9), "BS3": (1e-4, 1e-7)}  # f32, f64


def options(m, dtype):
    if not m.adaptive:
        return {"dt": 0.01}
    if dtype == torch.float32:
        return {"reltol": 1e-5, "abstol": 1e-7}
    return {"reltol": 1e-8, "abstol": 1e-10} if m.name == "BS3" else {"reltol": 1e-10, "abstol": 1e-12}


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("m", METHODS, ids=ids(METHODS))
def test_solution_dtype_follows_u0_and_accuracy_fits_it(m, dtype):
    saveat = torch.tensor(SAVEAT, dtype=dtype)
    sol = gnode.solve(linear_problem(dtype), m.alg, saveat=saveat, **options(m, dtype))
    assert sol.u.dtype == dtype and sol.t.dtype == dtype and sol.t_final.dtype == dtype
    assert sol(0.5).dtype == dtype
    assert all(v.dtype == torch.long for v in sol.stats.as_dict().values())
    err = float(np.abs(sol.u.double().numpy() - linear_exact(LINEAR_A, U0, SAVEAT)).max())
    # dt = 0.01 for the fixed-step ones; float32 adds round-off of ~1e-6 over 200 steps; float64 adaptive ones
    # at reltol 1e-10 land far below float32's eps
    f32, f64 = ERROR_LIMITS.get(m.name, (1e-4, 1e-8))
    assert err < (f32 if dtype == torch.float32 else f64), err


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("sensealg", [None, gnode.InterpolatingAdjoint()], ids=["Backprop", "Interpolating"])
def test_gradients_and_inputs_keep_the_dtype(dtype, sensealg):
    field = GatedField(3, 2, seed=2, dtype=dtype)
    u0 = torch.tensor(U0, dtype=dtype, requires_grad=True)
    values = torch.randn(2, TIMES.size, 2, dtype=dtype, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    control = gnode.Control(torch.tensor(TIMES, dtype=dtype), values, interpolation="linear")
    prob = gnode.ODEProblem(field, u0, (0.0, 2.0), inputs=control)
    sol = gnode.solve(
        prob, gnode.Tsit5(), saveat=torch.tensor(SAVEAT, dtype=dtype), sensealg=sensealg, reltol=1e-5, abstol=1e-7
    )
    assert sol.u.dtype == dtype
    sol.u.square().sum().backward()
    for t in (u0, values, *field.parameters()):
        assert t.grad is not None and t.grad.dtype == dtype and torch.isfinite(t.grad).all()


def test_float32_and_float64_agree_to_float32_accuracy():
    a = gnode.solve(linear_problem(torch.float32), gnode.Tsit5(), reltol=1e-5, abstol=1e-7)
    b = gnode.solve(linear_problem(F64), gnode.Tsit5(), reltol=1e-5, abstol=1e-7)
    assert float((a.u.double() - b.u).abs().max()) < 1e-5


def test_default_tolerances_work_in_float32():
    # float32 is the usual training dtype: solve(prob) with the documented defaults must just work there
    sol = gnode.solve(linear_problem(torch.float32))
    assert sol.u.dtype == torch.float32
    assert float(np.abs(sol.u[:, -1].double().numpy() - linear_exact(LINEAR_A, U0, [2.0])[:, 0]).max()) < 1e-4


def test_scipy_engine_returns_the_dtype_of_u0():
    sol = gnode.solve(linear_problem(torch.float32), gnode.DP5(), engine="scipy", reltol=1e-5, abstol=1e-7)
    assert sol.u.dtype == torch.float32 and sol.t_final.dtype == torch.float32
    assert float(np.abs(sol.u[:, -1].double().numpy() - linear_exact(LINEAR_A, U0, [2.0])[:, 0]).max()) < 1e-5


# ------------------------------------------------------------------------------------------------- CUDA


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("m", METHODS, ids=ids(METHODS))
def test_cuda_solve_matches_cpu(m):
    saveat = torch.tensor(SAVEAT, dtype=F64)
    cpu = gnode.solve(linear_problem(F64), m.alg, saveat=saveat, **options(m, F64))
    gpu = gnode.solve(linear_problem(F64, "cuda"), m.alg, saveat=saveat.cuda(), **options(m, F64))
    assert gpu.u.device.type == "cuda" and gpu.stats.nf.device.type == "cuda" and gpu.retcodes.device.type == "cuda"
    torch.testing.assert_close(gpu.u.cpu(), cpu.u, rtol=1e-10, atol=1e-12)
    assert torch.equal(gpu.stats.naccept.cpu(), cpu.stats.naccept)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize(
    "sensealg",
    [
        None,
        gnode.BacksolveAdjoint(),
        gnode.InterpolatingAdjoint(),
        gnode.InterpolatingAdjoint(checkpointing=True),
        gnode.QuadratureAdjoint(),
    ],
    ids=["Backprop", "Backsolve", "Interpolating", "InterpolatingCheckpointed", "Quadrature"],
)
def test_cuda_gradients_with_inputs_match_cpu(sensealg):
    grads = {}
    for device in ("cpu", "cuda"):
        field = GatedField(3, 2, seed=2).to(device)
        u0 = torch.tensor(U0, dtype=F64, device=device, requires_grad=True)
        values = torch.randn(2, TIMES.size, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
        values = values.to(device).requires_grad_(True)
        control = gnode.Control(torch.tensor(TIMES, dtype=F64, device=device), values, interpolation="zoh")
        prob = gnode.ODEProblem(field, u0, (0.0, 2.0), inputs=control)
        sol = gnode.solve(
            prob,
            gnode.Tsit5(),
            saveat=torch.tensor(SAVEAT, dtype=F64, device=device),
            sensealg=sensealg,
            reltol=1e-8,
            abstol=1e-10,
        )
        sol.u.square().sum().backward()
        grads[device] = [t.grad.cpu() for t in (u0, values, *field.parameters())]
    for g_cpu, g_gpu in zip(grads["cpu"], grads["cuda"]):
        torch.testing.assert_close(g_gpu, g_cpu, rtol=1e-8, atol=1e-10)


@pytest.mark.gpu
@needs_cuda
def test_cuda_float32():
    sol = gnode.solve(linear_problem(torch.float32, "cuda"), gnode.Tsit5(), reltol=1e-5, abstol=1e-7)
    assert sol.u.dtype == torch.float32 and sol.u.device.type == "cuda"
    assert float(np.abs(sol.u[:, -1].double().cpu().numpy() - linear_exact(LINEAR_A, U0, [2.0])[:, 0]).max()) < 1e-4
