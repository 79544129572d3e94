"""`BackpropAdjoint()`: autograd records every step; the gradient is that of the computed solution."""

from __future__ import annotations

from gnode.engines.torch.forward import make_solution, run_forward


def solve_backprop(prob, alg, sensealg, opts):
    fwd = run_forward(prob, alg, opts)
    return make_solution(prob, alg, opts, fwd, fwd.dense.at_times(opts.saveat))
