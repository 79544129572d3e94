"""The bridge end to end through the pure-Python stand-in for Julia (TEST SCAFFOLDING, not Julia).

The stand-in computes with the native torch engine behind the contract's entry points, so through it
the julia engine's path (model export, Julia-layout views, the owner thread, the autograd.Function,
the gradient scatter, return codes and statistics) must reproduce the native engine exactly. Sizes are
all different (batch 3, saves 5, n 4, input dim 2, input samples 6) so that a transposed or misread
axis cannot go unnoticed.
"""

from __future__ import annotations

import dataclasses
import gc
import pickle
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

    def __init__(self, runtime, **options):
        super().__init__(**options)
        self.runtime = runtime

    def available(self):
        return True, "stand-in"

    def solve(self, prob, alg, sensealg, opts):
        return bridge.solve(prob, alg, sensealg, opts, runtime=self.runtime, config=self.config)


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
    (g,) = torch.autograd.grad(sol.u.square().sum(), values)
    (r,) = torch.autograd.grad(ref.u.square().sum(), values)
    assert g.shape == (1, 6, 2)
    torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)


def test_float32_solves_stay_float32(standin):
    model = random_model(NeuralODE, dtype=torch.float32)
    prob, values = problem(model, dtype=torch.float32)
    sol = gnode.solve(prob, gnode.Tsit5(), engine="julia-standin", saveat=SAVEAT.float(), reltol=1e-5, abstol=1e-7)
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
    (want,) = torch.autograd.grad(ref.u.sum(), prob.u0)
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


def test_engine_settings_are_checked_and_belong_to_the_instance():
    with pytest.raises(ValueError, match="vjp must be one of"):
        JuliaEngine(vjp="Magic")
    with pytest.raises(ValueError, match="mode must be one of"):
        JuliaEngine(mode="gpu")
    with pytest.raises(TypeError, match="colour"):
        JuliaEngine(colour="red")
    batched = JuliaEngine(mode="batched", vjp="ZygoteVJP", keep=True)
    assert JuliaEngine().config == bridge.EngineConfig()  # a second instance is not changed by the first
    assert repr(batched) == "JuliaEngine(mode='batched', vjp='ZygoteVJP', keep=True)"
    # settings are plain data on the instance, so a configured engine travels to Ray / distributed workers
    clone = pickle.loads(pickle.dumps(batched))
    assert clone.config == batched.config and clone.algorithms == batched.algorithms


# -- algorithms cross with their options -----------------------------------------------------------
def engine(runtime, **options):
    return StandInEngine(runtime, **options)


def test_algorithm_and_sensealg_options_cross_the_bridge(standin):
    """The bridge used to send only names: AutoTsit5(stiffalg=KenCarp4(...)) ran as AutoTsit5(Rodas5P()) and
    KenCarp4's, TRBDF2's and the adjoints' options were dropped. The stand-in rebuilds what it received."""
    runtime, si = standin
    model = random_model(NeuralODE)
    prob, _ = problem(model)
    algs = [
        gnode.AutoTsit5(
            stiffalg=gnode.KenCarp4(kappa=0.05, max_iter=7, smooth_est=True), maxstiffstep=4, nonstifftol=0.5
        ),
        gnode.TRBDF2(smooth_est=False, fast_rate=0.2),
    ]
    sense = gnode.InterpolatingAdjoint(alg=gnode.Vern7(), reltol=1e-7, checkpointing=True)
    for alg in algs:
        sol = gnode.solve(prob, alg, engine=engine(runtime), sensealg=sense, saveat=SAVEAT, reltol=1e-5, abstol=1e-7)
        assert si.algorithms[-1] == alg and si.sensealgs[-1] == sense
        assert si.requests[-1].alg == alg.to_spec() and si.requests[-1].sensealg == sense.to_spec()
        assert sol.alg is alg
    with torch.no_grad():  # forward only: no sensealg crosses
        gnode.solve(prob, algs[0], engine=engine(runtime), sensealg=sense, saveat=SAVEAT)
    assert si.requests[-1].sensealg is None and not si.requests[-1].keep


def test_an_option_without_a_julia_counterpart_is_refused_by_name_before_crossing(standin):
    runtime, si = standin
    model = random_model(NeuralODE)
    prob, _ = problem(model)
    with pytest.raises(ValueError, match=r"QuadratureAdjoint\(order=\.\.\.\).*QuadGK.*engine='torch'"):
        gnode.solve(prob, gnode.Tsit5(), engine=engine(runtime), sensealg=gnode.QuadratureAdjoint(order=3))
    with pytest.raises(ValueError, match=r"controller=PIController\(qmax=5\.0\).*OrdinaryDiffEq's default"):
        gnode.solve(prob, gnode.Tsit5(), engine=engine(runtime), controller=gnode.PIController(qmax=5.0))
    assert "solve_forward!" not in dict(si.calls)
    # at its default the option means "the Julia method's own quadrature", and is not sent
    gnode.solve(prob, gnode.Tsit5(), engine=engine(runtime), sensealg=gnode.QuadratureAdjoint(reltol=1e-7))
    assert si.requests[-1].sensealg == {
        "name": "QuadratureAdjoint",
        "options": {"alg": None, "reltol": 1e-7, "abstol": None},
    }


def test_the_standin_refuses_what_the_julia_module_refuses(standin):
    """A renamed or unforwarded option reaching the Julia side is an error there, not silently ignored."""
    runtime, si = standin
    model = random_model(NeuralODE)
    prob, _ = problem(model)
    gnode.solve(prob, gnode.KenCarp4(), engine=engine(runtime), saveat=SAVEAT)
    good = si.requests[-1]
    args = _forward_buffers(prob, good)
    for alg, message in [
        ({"name": "KenCarp4", "options": {"kapa": 0.1}}, "does not take option 'kapa'"),
        (
            {"name": "AutoTsit5", "options": {"stiffalg": {"name": "Rodas5P", "options": {"x": 1}}}},
            "Rodas5P: the Julia engine does not take option 'x'",
        ),
        ({"name": "Tsit6", "options": {}}, "unknown algorithm 'Tsit6'"),
    ]:
        bad = dataclasses.replace(good, alg=alg)
        with pytest.raises(ValueError, match=message):
            si.solve_forward(*args, bad.to_json())
    zygote = dataclasses.replace(good, sensealg={"name": "InterpolatingAdjoint", "options": {}}, vjp="ZygoteVJP")
    with pytest.raises(ValueError, match="ZygoteVJP.*ensemble"):
        si.solve_forward(*args, zygote.to_json())


def _forward_buffers(prob, request):
    from gnode_bridge.contract import STAT_NAMES

    B, n = prob.u0.shape
    theta = prob.f.flat_parameters().detach()
    return (
        julia_view(torch.empty(B, len(request.saveat), n, dtype=torch.float64)),
        np.empty(B),
        np.empty(B, np.int64),
        np.empty((len(STAT_NAMES), B), np.int64),
        julia_view(theta),
        julia_view(prob.u0.detach()),
        julia_view(prob.inputs.values.detach()),
    )


def test_zygote_vjp_is_refused_in_the_ensemble_mode_and_accepted_batched(standin):
    """The ensemble mode's in-place field writes into a workspace, which Zygote cannot differentiate; SciML
    gives an explicitly chosen autojacvec no fallback, so this used to crash inside Julia."""
    runtime, si = standin
    model = random_model(NeuralODE)
    prob, _ = problem(model)
    with pytest.raises(ValueError, match=r"vjp='ZygoteVJP' cannot run in the 'ensemble' mode.*mode='batched'"):
        JuliaEngine(mode="ensemble", vjp="ZygoteVJP")
    cpu_default = engine(runtime, vjp="ZygoteVJP")  # mode None: ensemble on the CPU
    with pytest.raises(ValueError, match="'ensemble' mode"):
        gnode.solve(prob, gnode.Tsit5(), engine=cpu_default, sensealg=gnode.BacksolveAdjoint(), saveat=SAVEAT)
    assert "solve_forward!" not in dict(si.calls)
    with torch.no_grad():  # no adjoint, no VJP: nothing to refuse
        gnode.solve(prob, gnode.Tsit5(), engine=cpu_default, saveat=SAVEAT)
    gnode.solve(
        prob,
        gnode.Tsit5(),
        engine=engine(runtime, mode="batched", vjp="ZygoteVJP"),
        sensealg=gnode.BacksolveAdjoint(),
        saveat=SAVEAT,
    )
    assert si.requests[-1].mode == "batched" and si.requests[-1].vjp == "ZygoteVJP"


class RecordingBackend:
    """Writes a zero solution and records what it was sent (no computation)."""

    def __init__(self):
        self.thetas = []

    def solve_forward(self, u_out, tfinal_out, retcode_out, stats_out, theta, u0, input_values, request):
        self.thetas.append(np.asarray(theta).copy())
        torch_from_julia(u_out).zero_()
        np.asarray(tfinal_out)[:] = 1.0
        np.asarray(retcode_out)[:] = int(gnode.ReturnCode.Success)
        np.asarray(stats_out)[:] = 0
        return 0


class Parameterless(torch.nn.Module):
    """A gnODE-family field with no parameters: dh/dt = tanh(h) - h with identity weights held as constants."""

    def forward(self, t, h):
        return torch.tanh(h) - h

    def flat_entries(self):
        return []

    def spec(self):
        return {
            "format": "gnode.vector_field",
            "version": 1,
            "family": "Parameterless",
            "n": 2,
            "d_in": 0,
            "parameters": [],
        }


def test_a_parameterless_field_solves_without_gradients():
    """The no-gradient path called torch.cat([]) for a model without parameters (the gradient path guarded it)."""
    backend = RecordingBackend()
    from gnode_bridge.runtime import JuliaThread

    runtime = JuliaThread(lambda: backend).start()
    try:
        prob = gnode.ODEProblem(Parameterless(), torch.ones(3, 2, dtype=torch.float64), (0.0, 1.0))
        with torch.no_grad():
            sol = bridge.solve(prob, gnode.Tsit5(), None, _options(prob), runtime=runtime, config=bridge.EngineConfig())
        assert sol.u.shape == (3, 2, 2) and backend.thetas[0].shape == (0,)
    finally:
        runtime.close()


def _options(prob):
    from gnode.engines.registry import SolveOptions

    return SolveOptions(
        saveat=torch.tensor([0.0, 1.0], dtype=torch.float64),
        reltol=1e-6,
        abstol=1e-8,
        dt=None,
        dtmin=None,
        dtmax=None,
        maxiters=1000,
        tstops=None,
        throw=True,
    )
