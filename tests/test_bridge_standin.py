"""The bridge end to end through the pure-Python stand-in for Julia (TEST SCAFFOLDING, not Julia).

The stand-in computes with the native torch engine behind the contract's entry points, so through it
the julia engine's path (model export, Julia-layout views, the owner thread, the autograd.Function,
the gradient scatter, return codes and statistics) must reproduce the native engine exactly. Sizes are
all different (batch 3, saves 5, n 4, input dim 2, input samples 6) so that a transposed or misread
axis cannot go unnoticed.
"""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
import torch

import gnode
from gnode.engines import registry
from gnode.engines.julia import JuliaEngine
from gnode.models import GatedNODE, MinimalGRU, NeuralODE
from gnode_bridge import solve as bridge
from gnode_bridge.convert import host_array, julia_view, torch_from_julia
from gnode_bridge.testing import use_standin


class StandInEngine(JuliaEngine):
    """The julia engine with its backend replaced by the stand-in (available whatever Julia's state)."""

    name = "julia-standin"

    def __init__(self, runtime):
        super().__init__()
        self.runtime = runtime

    def available(self):
        return True, "stand-in"

    def solve(self, prob, alg, sensealg, opts):
        return bridge.solve(prob, alg, sensealg, opts, runtime=self.runtime)


@pytest.fixture
def standin():
    with use_standin() as (runtime, si):
        registry.register("julia-standin", lambda: StandInEngine(runtime))
        try:
            yield runtime, si
        finally:
            registry._ENGINES.pop("julia-standin", None)
            registry._INSTANCES.pop("julia-standin", None)


def random_model(cls=GatedNODE, n=4, d=2, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    model = cls(n, d, **kw).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.6)
    return model


def problem(model, batch=3, n=4, d=2, ti=6, interpolation="linear", shared_input=False, dtype=torch.float64):
    torch.manual_seed(1)
    u0 = torch.randn(batch, n, dtype=dtype, requires_grad=True)
    times = torch.linspace(0.0, 2.0, ti, dtype=dtype)
    values = torch.randn(1 if shared_input else batch, ti, d, dtype=dtype, requires_grad=True)
    return gnode.ODEProblem(model, u0, (0.0, 2.0), inputs=gnode.Control(times, values, interpolation)), values


SAVEAT = torch.tensor([0.0, 0.3, 0.9, 1.6, 2.0], dtype=torch.float64)


# -- conversion ---------------------------------------------------------------------------------------
def test_julia_view_reverses_axes_over_the_same_memory():
    x = torch.arange(3 * 5 * 4, dtype=torch.float64).reshape(3, 5, 4)
    v = julia_view(x)
    assert v.shape == (4, 5, 3) and v.flags["F_CONTIGUOUS"] and v.flags["WRITEABLE"]
    assert v[2, 4, 1] == x[1, 4, 2]
    v[0, 0, 0] = -7.0  # a write through the view lands in the tensor: no copy was made
    assert x[0, 0, 0] == -7.0
    back = torch_from_julia(v)
    assert back.shape == x.shape and back.data_ptr() == x.data_ptr()
    with pytest.raises(ValueError, match="contiguous"):
        julia_view(x.transpose(0, 2))
    assert host_array(torch.tensor([1.0, 2.0], dtype=torch.float32)).dtype == np.float64


def test_scatter_splits_the_flat_gradient_in_flat_order():
    model = random_model()
    flat = model.flat_parameters().detach()
    shapes = [p.shape for _, p in model.flat_entries()]
    parts = bridge.scatter(flat, shapes)
    for part, (_, p) in zip(parts, model.flat_entries()):
        assert torch.equal(part, p.detach())
    with pytest.raises(RuntimeError, match="flat gradient"):
        bridge.scatter(flat[:-1], shapes)


# -- solutions and gradients match the native engine --------------------------------------------------
@pytest.mark.parametrize("interpolation", ["zoh", "linear", "cubic"])
def test_solution_and_gradients_match_the_native_engine(standin, interpolation):
    runtime, si = standin
    model = random_model(depth_F=2, width_F=5)
    prob, values = problem(model, interpolation=interpolation)
    kw = {"saveat": SAVEAT, "reltol": 1e-5, "abstol": 1e-7}
    sol = gnode.solve(prob, gnode.Tsit5(), engine="julia-standin", sensealg=gnode.InterpolatingAdjoint(), **kw)
    ref = gnode.solve(prob, gnode.Tsit5(), engine="torch", **kw)
    assert sol.engine == "julia" and sol.u.shape == (3, 5, 4)
    torch.testing.assert_close(sol.u, ref.u, rtol=0, atol=0)
    torch.testing.assert_close(sol.t_final, ref.t_final)
    for name in ("nf", "naccept", "nreject"):
        assert torch.equal(getattr(sol.stats, name), getattr(ref.stats, name))
    w = torch.randn_like(sol.u)
    leaves = [prob.u0, values, *model.parameters()]
    got = torch.autograd.grad((sol.u * w).sum(), leaves)
    want = torch.autograd.grad((ref.u * w).sum(), leaves)
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)
    assert {t for _, t in si.calls} == {runtime.ident}


def test_shared_input_gradient_sums_over_the_batch(standin):
    model = random_model(MinimalGRU, phi_h="tanh")
    prob, values = problem(model, shared_input=True)
    sol = gnode.solve(prob, gnode.DP5(), engine="julia-standin", saveat=SAVEAT, reltol=1e-8, abstol=1e-10)
    ref = gnode.solve(prob, gnode.DP5(), engine="torch", saveat=SAVEAT, reltol=1e-8, abstol=1e-10)
    g, = torch.autograd.grad(sol.u.square().sum(), values)
    r, = torch.autograd.grad(ref.u.square().sum(), values)
    assert g.shape == (1, 6, 2)
    torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)


def test_float32_solves_stay_float32(standin):
    model = random_model(NeuralODE, dtype=torch.float32)
    prob, values = problem(model, dtype=torch.float32)
    sol = gnode.solve(prob, gnode.Tsit5(), engine="julia-standin", saveat=SAVEAT.float(), reltol=1e-5,
                      abstol=1e-7)
    assert sol.u.dtype == torch.float32
    g = torch.autograd.grad(sol.u.sum(), [prob.u0, values, *model.parameters()])
    assert all(x.dtype == torch.float32 and torch.isfinite(x).all() for x in g)


def test_backward_started_from_another_thread_runs_julia_calls_on_the_owner(standin):
    runtime, si = standin
    model = random_model()
    prob, _ = problem(model)
    sol = gnode.solve(prob, gnode.Tsit5(), engine="julia-standin", saveat=SAVEAT, reltol=1e-8, abstol=1e-10)
    ref = gnode.solve(prob, gnode.Tsit5(), engine="torch", saveat=SAVEAT, reltol=1e-8, abstol=1e-10)
    errors = []
    backward_thread = []

    def run_backward():
        backward_thread.append(threading.get_ident())
        try:
            sol.u.sum().backward()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=run_backward)
    t.start()
    t.join(60)
    assert not errors, errors
    assert backward_thread[0] not in (runtime.ident, threading.get_ident())
    calls = dict(si.calls)
    assert calls["solve_backward!"] == runtime.ident
    want, = torch.autograd.grad(ref.u.sum(), prob.u0)
    torch.testing.assert_close(prob.u0.grad, want, rtol=1e-12, atol=1e-12)


def test_dense_output_and_release_of_kept_solutions(standin):
    runtime, si = standin
    model = random_model()
    prob, _ = problem(model)
    sol = gnode.solve(prob, gnode.Tsit5(), engine="julia-standin", saveat=SAVEAT, reltol=1e-8, abstol=1e-10)
    ref = gnode.solve(prob, gnode.Tsit5(), engine="torch", saveat=SAVEAT, reltol=1e-8, abstol=1e-10)
    tt = torch.tensor([0.45, 1.2], dtype=torch.float64)
    torch.testing.assert_close(sol(tt), ref(tt), rtol=0, atol=0)
    assert len(si.kept_handles) == 1
    del sol
    gc.collect()
    runtime.call(lambda be: None)  # the release was posted; let it run
    assert si.kept_handles == []
    with torch.no_grad():
        nograd = gnode.solve(prob, gnode.Tsit5(), engine="julia-standin", saveat=SAVEAT)
    assert si.kept_handles == [] and nograd.u.grad_fn is None
    with pytest.raises(NotImplementedError, match="saveat"):
        nograd(tt)


def test_failures_give_return_codes_statistics_and_a_solve_error(standin):
    model = random_model()
    prob, _ = problem(model)
    sol = gnode.solve(prob, gnode.Tsit5(), engine="julia-standin", saveat=SAVEAT, maxiters=3, throw=False)
    ref = gnode.solve(prob, gnode.Tsit5(), engine="torch", saveat=SAVEAT, maxiters=3, throw=False)
    assert sol.retcode == gnode.ReturnCode.MaxIters
    assert torch.equal(sol.retcodes, ref.retcodes)
    assert torch.equal(sol.stats.naccept + sol.stats.nreject, ref.stats.naccept + ref.stats.nreject)
    torch.testing.assert_close(sol.t_final, ref.t_final)
    assert torch.isnan(sol.u[:, -1]).all()
    with pytest.raises(gnode.SolveError, match="julia engine, Tsit5: MaxIters in trajectory 0"):
        gnode.solve(prob, gnode.Tsit5(), engine="julia-standin", saveat=SAVEAT, maxiters=3)


# -- clear errors -------------------------------------------------------------------------------------
def test_callables_without_a_spec_are_refused_with_advice(standin):
    prob = gnode.ODEProblem(lambda t, u: -u, torch.ones(2, 3, dtype=torch.float64), (0.0, 1.0))
    with pytest.raises(TypeError, match="engine='torch'"):
        gnode.solve(prob, gnode.Tsit5(), engine="julia-standin")


def test_a_model_with_inputs_needs_a_control(standin):
    model = random_model()
    prob = gnode.ODEProblem(model, torch.zeros(3, 4, dtype=torch.float64), (0.0, 1.0))
    with pytest.raises(ValueError, match="gnode.Control"):
        gnode.solve(prob, gnode.Tsit5(), engine="julia-standin")


def test_mixed_precision_is_refused(standin):
    model = random_model(dtype=torch.float32)
    prob, _ = problem(model)
    with pytest.raises(TypeError, match="one precision"):
        gnode.solve(prob, gnode.Tsit5(), engine="julia-standin")


def test_missing_julia_gives_an_install_hint(monkeypatch):
    from gnode_bridge import status

    monkeypatch.setattr(status.importlib.util, "find_spec", lambda name: None)
    s = status.julia_status()
    assert not s.usable and s.reason.startswith("Julia not found")
    assert "pip install 'gnode[julia]'" in s.reason and "gnode julia setup" in s.reason
    registry.register("julia-missing", JuliaEngine)
    try:
        prob = gnode.ODEProblem(random_model(), torch.zeros(3, 4, dtype=torch.float64), (0.0, 1.0))
        with pytest.raises(RuntimeError, match="gnode julia setup"):
            gnode.solve(prob, gnode.Tsit5(), engine="julia-missing")
    finally:
        registry._ENGINES.pop("julia-missing", None)
        registry._INSTANCES.pop("julia-missing", None)


def test_configure_rejects_unknown_options():
    with pytest.raises(TypeError, match="unknown option"):
        bridge.configure(colour="red")
    with pytest.raises(ValueError, match="vjp"):
        bridge.configure(vjp="Magic")
    assert bridge.current_config().vjp == "auto"
