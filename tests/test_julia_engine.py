"""The real Julia engine against the native torch engine: same model, same weights, float64.

Marked `julia`; they skip with "Julia not found ..." wherever juliacall cannot start Julia with the
engine's environment (`gnode julia setup` installs it). In hosted CI, .github/workflows/julia.yml runs
them with Julia installed, as `pytest -m julia -p gnode_bridge.early` (Julia started before torch).

Solutions are compared at 1e-6 relative: both engines solve at rtol 1e-10, so each is within ~1e-9 of
the exact solution. Stiff methods, which the torch engine does not have, are compared with its Vern7.
Gradients of every sensealg are compared with backpropagation through the torch engine.
"""

from __future__ import annotations

import threading

import pytest
import torch

import gnode
from gnode.engines import registry
from gnode.models import GatedNODE

pytestmark = pytest.mark.julia

TIGHT = {"reltol": 1e-10, "abstol": 1e-12}
SAVEAT = torch.tensor([0.0, 0.25, 0.8, 1.3, 1.5], dtype=torch.float64)


@pytest.fixture(scope="module")
def julia():
    from gnode_bridge import julia_status
    from gnode_bridge.runtime import get_runtime

    status = julia_status(probe=True)
    if not status.usable:
        reason = status.reason
        pytest.skip(reason if reason.startswith("Julia not found") else f"Julia not found: {reason}")
    if "julia" not in registry.engine_names():
        from gnode.engines.julia import make_engine

        registry.register("julia", make_engine)
    return get_runtime().start()


def model_and_problem(interpolation="linear", dtype=torch.float64, batch=3, seed=0):
    torch.manual_seed(seed)
    model = GatedNODE(4, 2, depth_F=2, width_F=6, depth_G=1).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    u0 = torch.randn(batch, 4, dtype=dtype, requires_grad=True)
    times = torch.linspace(0.0, 1.5, 7, dtype=dtype)
    values = torch.randn(batch, 7, 2, dtype=dtype, requires_grad=True)
    prob = gnode.ODEProblem(model, u0, (0.0, 1.5), inputs=gnode.Control(times, values, interpolation))
    return model, prob, values


def rel_close(a, b, rtol=1e-6):
    scale = b.abs().max().clamp_min(1e-12)
    assert float((a - b).abs().max() / scale) < rtol, float((a - b).abs().max() / scale)


@pytest.mark.parametrize("alg", ["BS3", "DP5", "Tsit5", "Vern7"])
def test_explicit_methods_match_the_torch_engine(julia, alg):
    _, prob, _ = model_and_problem()
    method = getattr(gnode, alg)()
    with torch.no_grad():
        sol = gnode.solve(prob, method, engine="julia", saveat=SAVEAT, **TIGHT)
        ref = gnode.solve(prob, method, engine="torch", saveat=SAVEAT, **TIGHT)
    assert sol.successful and (sol.stats.naccept > 0).all() and (sol.stats.nf > sol.stats.naccept).all()
    rel_close(sol.u, ref.u)


@pytest.mark.parametrize("interpolation", ["zoh", "linear", "cubic"])
def test_inputs_are_interpolated_like_gnode_control(julia, interpolation):
    _, prob, _ = model_and_problem(interpolation)
    with torch.no_grad():
        sol = gnode.solve(prob, gnode.Tsit5(), engine="julia", saveat=SAVEAT, **TIGHT)
        ref = gnode.solve(prob, gnode.Tsit5(), engine="torch", saveat=SAVEAT, **TIGHT)
    rel_close(sol.u, ref.u)


@pytest.mark.parametrize("alg", ["Rodas5P", "KenCarp4", "FBDF", "RadauIIA5", "RadauIIA9", "AutoTsit5", "Rosenbrock23"])
def test_stiff_methods_match_the_torch_reference(julia, alg):
    method = getattr(gnode, alg, None)
    if method is None:
        pytest.skip(f"gnode defines no {alg}() yet")
    method = method(gnode.Rodas5P()) if alg.startswith("Auto") else method()
    _, prob, _ = model_and_problem()
    with torch.no_grad():
        sol = gnode.solve(prob, method, engine="julia", saveat=SAVEAT, reltol=1e-9, abstol=1e-11)
        ref = gnode.solve(prob, gnode.Vern7(), engine="torch", saveat=SAVEAT, **TIGHT)
    assert sol.successful and (sol.stats.njacs > 0).all()
    rel_close(sol.u, ref.u, rtol=1e-6)


def test_fixed_step_rk4_takes_the_same_steps(julia):
    _, prob, _ = model_and_problem()
    with torch.no_grad():
        sol = gnode.solve(prob, gnode.RK4(), engine="julia", saveat=SAVEAT, dt=0.05)
        ref = gnode.solve(prob, gnode.RK4(), engine="torch", saveat=SAVEAT, dt=0.05)
    rel_close(sol.u, ref.u, rtol=1e-6)


def gradients(sol, prob, model, values, w):
    return torch.autograd.grad((sol.u * w).sum(), [prob.u0, values, *model.parameters()])


@pytest.mark.parametrize(
    "sensealg",
    [
        "BackpropAdjoint()",
        "BacksolveAdjoint()",
        "InterpolatingAdjoint()",
        "InterpolatingAdjoint(checkpointing=True)",
        "QuadratureAdjoint()",
        "GaussAdjoint()",
    ],
)
def test_gradients_of_every_sensealg_match_torch_backprop(julia, sensealg):
    name = sensealg.split("(")[0]
    if getattr(gnode.algorithms, name, None) is None:
        pytest.skip(f"gnode defines no {name}() yet")
    sense = eval("gnode.algorithms." + sensealg)
    model, prob, values = model_and_problem()
    w = torch.randn(3, len(SAVEAT), 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    sol = gnode.solve(prob, gnode.Tsit5(), engine="julia", sensealg=sense, saveat=SAVEAT, **TIGHT)
    ref = gnode.solve(prob, gnode.Tsit5(), engine="torch", saveat=SAVEAT, **TIGHT)
    for g, r in zip(gradients(sol, prob, model, values, w), gradients(ref, prob, model, values, w)):
        rel_close(g, r)


@pytest.mark.parametrize("vjp", ["auto", "EnzymeVJP", "ReverseDiffVJP", "ForwardDiff"])
def test_every_vjp_choice_gives_the_same_gradient(julia, vjp):
    from gnode.engines.julia import JuliaEngine

    model, prob, values = model_and_problem("zoh")
    w = torch.ones(3, len(SAVEAT), 4, dtype=torch.float64)
    ref = gnode.solve(prob, gnode.Tsit5(), engine="torch", saveat=SAVEAT, **TIGHT)
    sol = gnode.solve(
        prob, gnode.Tsit5(), engine=JuliaEngine(vjp=vjp), sensealg=gnode.InterpolatingAdjoint(), saveat=SAVEAT, **TIGHT
    )
    for g, r in zip(gradients(sol, prob, model, values, w), gradients(ref, prob, model, values, w)):
        rel_close(g, r)


def test_the_stiff_method_of_an_autoswitch_is_the_one_asked_for(julia):
    """The bridge used to send only "AutoTsit5", run as AutoTsit5(Rodas5P()). Started on the stiff method,
    KenCarp4 counts Newton iterations and Rodas5P (linearly implicit) none."""
    _, prob, _ = model_and_problem()
    runs = {}
    for stiff in (gnode.KenCarp4(kappa=0.02), gnode.Rodas5P()):
        with torch.no_grad():
            runs[stiff.name] = gnode.solve(
                prob,
                gnode.AutoTsit5(stiffalg=stiff, stiffalgfirst=True),
                engine="julia",
                saveat=SAVEAT,
                reltol=1e-8,
                abstol=1e-10,
            )
    assert (runs["KenCarp4"].stats.nnonliniter > 0).all() and (runs["Rodas5P"].stats.nnonliniter == 0).all()
    rel_close(runs["KenCarp4"].u, runs["Rodas5P"].u, rtol=1e-5)


def test_batched_mode_matches_ensemble_mode(julia):
    from gnode.engines.julia import JuliaEngine

    model, prob, values = model_and_problem()
    ens = gnode.solve(prob, gnode.Tsit5(), engine="julia", saveat=SAVEAT, **TIGHT)
    bat = gnode.solve(prob, gnode.Tsit5(), engine=JuliaEngine(mode="batched"), saveat=SAVEAT, **TIGHT)
    g_bat = gradients(bat, prob, model, values, torch.ones_like(bat.u))
    rel_close(bat.u, ens.u)
    for g, r in zip(g_bat, gradients(ens, prob, model, values, torch.ones_like(ens.u))):
        rel_close(g, r)


def test_float32_solves_in_float32(julia):
    _, prob64, _ = model_and_problem()
    _, prob32, _ = model_and_problem(dtype=torch.float32)
    with torch.no_grad():
        s32 = gnode.solve(prob32, gnode.Tsit5(), engine="julia", saveat=SAVEAT.float(), reltol=1e-5, abstol=1e-7)
        s64 = gnode.solve(prob64, gnode.Tsit5(), engine="julia", saveat=SAVEAT, **TIGHT)
    assert s32.u.dtype == torch.float32
    rel_close(s32.u.double(), s64.u, rtol=1e-3)


def test_maxiters_is_reported_as_a_return_code(julia):
    _, prob, _ = model_and_problem()
    with torch.no_grad():
        sol = gnode.solve(prob, gnode.Tsit5(), engine="julia", saveat=SAVEAT, maxiters=2, throw=False, **TIGHT)
    assert (sol.retcodes == int(gnode.ReturnCode.MaxIters)).all()
    assert torch.isnan(sol.u[:, -1]).all()
    with pytest.raises(gnode.SolveError, match="MaxIters"), torch.no_grad():
        gnode.solve(prob, gnode.Tsit5(), engine="julia", saveat=SAVEAT, maxiters=2, **TIGHT)


def test_backward_from_another_thread(julia):
    _, prob, _ = model_and_problem()
    sol = gnode.solve(prob, gnode.Tsit5(), engine="julia", saveat=SAVEAT, **TIGHT)
    ref = gnode.solve(prob, gnode.Tsit5(), engine="torch", saveat=SAVEAT, **TIGHT)
    errors = []
    t = threading.Thread(target=lambda: _backward(sol.u.sum(), errors))
    t.start()
    t.join(600)
    assert not errors, errors
    (want,) = torch.autograd.grad(ref.u.sum(), prob.u0)
    rel_close(prob.u0.grad, want)


def _backward(loss, errors):
    try:
        loss.backward()
    except BaseException as e:  # noqa: BLE001 - reported by the test
        errors.append(e)
