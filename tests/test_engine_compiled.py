"""solve(..., compile=...): the compiled attempt agrees with the eager one, is cached, and falls back cleanly.

The default run traces with the "aot_eager" backend (dynamo and AOTAutograd, the same graph as inductor gets,
without inductor's C++ compilation, which takes tens of seconds a graph on 2 cores); the `slow` tests run inductor
itself and compare its round-off-level agreement.
"""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.testing import CompileCounter

import gnode
from gnode.engines.torch.compiled import CompileWarning
from helpers import F64, LINEAR_A, GatedField, linear_exact, linear_field

TIMES = torch.linspace(0.0, 4.0, 9, dtype=F64)
U0 = torch.tensor([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0], [0.0, 0.0, 3.0]], dtype=F64)
LINEAR = gnode.ODEProblem(linear_field(LINEAR_A), U0, (0.0, 4.0))


BS3 = gnode.BS3()  # a small graph, so tracing stays quick


def solve_linear(compile, alg=BS3, **kw):
    return gnode.solve(LINEAR, alg, saveat=TIMES, reltol=1e-8, abstol=1e-10, compile=compile, **kw)


@pytest.mark.slow  # the default run traces once, in the test below
def test_the_compiled_attempt_agrees_with_the_eager_one_and_is_traced_once():
    counter = CompileCounter()
    eager = solve_linear(False)
    first = solve_linear(counter)
    graphs = counter.frame_count
    second = solve_linear(counter)
    assert graphs >= 1 and counter.frame_count == graphs  # the second solve reuses the cached graph(s)
    for sol in (first, second):
        torch.testing.assert_close(sol.u, eager.u, rtol=1e-12, atol=1e-14)
        assert torch.equal(sol.retcodes, eager.retcodes)
        assert torch.equal(sol.stats.nf, eager.stats.nf)
    exact = torch.as_tensor(linear_exact(LINEAR_A, U0.numpy(), TIMES.numpy()))
    assert (first.u - exact).abs().max() < 1e-7


def test_an_untraceable_vector_field_falls_back_to_eager_with_one_warning():
    A = torch.as_tensor(LINEAR_A, dtype=F64)

    def opaque(t, u):  # a Python branch on a value: dynamo cannot put it in one graph
        if float(u.abs().max()) > 1e6:
            raise FloatingPointError("diverged")
        return u @ A.T

    prob = gnode.ODEProblem(opaque, U0, (0.0, 1.0))
    with pytest.warns(CompileWarning, match="could not be compiled as one graph"):
        sol = gnode.solve(prob, gnode.BS3(), reltol=1e-8, abstol=1e-10, compile=CompileCounter())
    exact = torch.as_tensor(linear_exact(LINEAR_A, U0.numpy(), [1.0]))[:, 0]
    assert (sol.u[:, -1] - exact).abs().max() < 1e-7


def test_a_method_with_newton_iterations_solves_eagerly_and_says_why():
    with pytest.warns(CompileWarning, match="data-dependent control flow"):
        sol = solve_linear("aot_eager", gnode.KenCarp4())
    assert sol.retcode == gnode.ReturnCode.Success


@pytest.mark.slow  # AOTAutograd traces the joint graph: 25-75 s on a loaded 2-core machine
def test_backprop_through_the_compiled_attempt_matches_eager():
    f = GatedField(2, dim=1, seed=3)
    x = torch.randn(2, 5, 1, dtype=F64, generator=torch.Generator().manual_seed(0))
    times = torch.linspace(0, 2, 5, dtype=F64)
    grads = []
    for compile in (False, "aot_eager"):
        xs = x.clone().requires_grad_(True)
        prob = gnode.ODEProblem(f, torch.zeros(2, 2, dtype=F64), (0.0, 2.0), inputs=gnode.Control(times, xs, "linear"))
        sol = gnode.solve(prob, gnode.BS3(), saveat=times, reltol=1e-8, abstol=1e-10, compile=compile)
        grads.append(torch.autograd.grad(sol.u.square().sum(), [xs, *f.parameters()]))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_compile_is_refused_on_other_engines_and_for_bad_values():
    with pytest.raises(ValueError, match="native engine"):
        gnode.solve(gnode.ODEProblem(linear_field(LINEAR_A), U0, (0.0, 1.0)), gnode.DP5(), engine="scipy", compile=True)
    with pytest.raises(TypeError, match="compile must be"):
        solve_linear(3)


@pytest.mark.slow
@pytest.mark.parametrize("alg", [gnode.Tsit5(), gnode.Rodas5P()], ids=["Tsit5", "Rodas5P"])
def test_inductor_agrees_with_eager_to_round_off_and_tolerance(alg):
    f = GatedField(4, seed=1)
    u0 = torch.randn(6, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
    prob = gnode.ODEProblem(f, u0, (0.0, 5.0))
    eager = gnode.solve(prob, alg, saveat=TIMES, reltol=1e-9, abstol=1e-11)
    compiled = gnode.solve(prob, alg, saveat=TIMES, reltol=1e-9, abstol=1e-11, compile=True)
    # fused kernels sum in another order: the step sequences may differ, the solutions agree to the tolerance
    assert torch.equal(eager.retcodes, compiled.retcodes)
    assert (compiled.u - eager.u).abs().max() < 1e-7


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_compiled_attempt_on_cuda_matches_the_cpu_solve():
    f = GatedField(4, seed=2)
    u0 = torch.randn(8, 4, dtype=F64, generator=torch.Generator().manual_seed(2))
    cpu = gnode.solve(gnode.ODEProblem(f, u0, (0.0, 4.0)), gnode.Tsit5(), saveat=TIMES, reltol=1e-9, abstol=1e-11)
    f_gpu = GatedField(4, seed=2).cuda()
    gpu = gnode.solve(
        gnode.ODEProblem(f_gpu, u0.cuda(), (0.0, 4.0)),
        gnode.Tsit5(),
        saveat=TIMES.cuda(),
        reltol=1e-9,
        abstol=1e-11,
        compile=True,
    )
    assert gpu.u.device.type == "cuda" and torch.equal(gpu.retcodes.cpu(), cpu.retcodes)
    assert (gpu.u.cpu() - cpu.u).abs().max() < 1e-7


def test_a_cached_graph_solves_with_each_solves_own_inputs_and_parameters():
    f = GatedField(2, dim=1, seed=4)
    times = torch.linspace(0, 2, 5, dtype=F64)
    counter = CompileCounter()
    gen = torch.Generator().manual_seed(5)
    for _ in range(3):  # new inputs (of the same shape) and new parameter values every solve, as in training
        x = torch.randn(2, 5, 1, dtype=F64, generator=gen)
        with torch.no_grad():
            f.W.mul_(0.9)
        prob = gnode.ODEProblem(f, torch.zeros(2, 2, dtype=F64), (0.0, 2.0), inputs=gnode.Control(times, x))
        eager = gnode.solve(prob, BS3, saveat=times, reltol=1e-8, abstol=1e-10)
        compiled = gnode.solve(prob, BS3, saveat=times, reltol=1e-8, abstol=1e-10, compile=counter)
        torch.testing.assert_close(compiled.u, eager.u, rtol=1e-12, atol=1e-14)
        assert torch.equal(compiled.retcodes, eager.retcodes) and torch.equal(compiled.stats.nf, eager.stats.nf)
    assert 1 <= counter.frame_count <= 2  # traced once (twice at most: the full batch and a compacted one)
