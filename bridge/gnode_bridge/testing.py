"""TEST SCAFFOLDING — NOT JULIA. A pure-Python stand-in for the Julia module `GnodeEngine`.

`StandInJulia` implements the entry points of `gnode_bridge.contract` with the same signatures and the
same array layouts (every array in Julia's reversed-dimension view, outputs written into the caller's
buffers), but computes with gnode's native torch engine. It exists so that the bridge's conversion,
its single-thread dispatch and its gradient scatter can be tested where Julia is not installed. It
never poses as Julia: nothing in the package uses it unless a test installs it with `use_standin()`,
and results computed through it say nothing about the Julia engine's numerics.

Differences from the real module, on purpose: every sensealg is computed by backpropagation through
the torch engine (the stand-in checks plumbing, not adjoint methods), algorithms gnode does not define
are refused, and the "batched" mode is the same computation as "ensemble".
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading

import numpy as np
import torch

from gnode_bridge import contract
from gnode_bridge.convert import torch_from_julia
from gnode_bridge.runtime import JuliaThread, set_runtime


class StandInJulia:
    """The contract's entry points over the torch engine; records the thread of every call."""

    def __init__(self):
        self.calls: list[tuple[str, int]] = []
        self._kept: dict[int, dict] = {}
        self._handles = itertools.count(1)

    def _record(self, name: str) -> None:
        self.calls.append((name, threading.get_ident()))

    @property
    def kept_handles(self) -> list[int]:
        return sorted(self._kept)

    # -- entry points (same positional signatures as the Julia functions) ---------------------------
    def api_version(self) -> int:
        self._record("api_version")
        return contract.API_VERSION

    def solve_forward(self, u_out, tfinal_out, retcode_out, stats_out, spec_json, theta, u0, t0, t1, saveat,
                      input_times, input_values, interpolation, alg, sensealg, vjp, checkpointing,
                      adjoint_alg, adjoint_reltol, adjoint_abstol, reltol, abstol, dt, dtmin, dtmax,
                      maxiters, tstops, keep, mode) -> int:
        import gnode
        from gnode.models import from_spec

        self._record("solve_forward!")
        if alg not in contract.ALGORITHMS:
            raise ValueError(f"unknown algorithm {alg!r}")
        if mode not in contract.MODES or vjp not in contract.VJPS:
            raise ValueError(f"bad mode {mode!r} or vjp {vjp!r}")
        if sensealg and sensealg not in contract.SENSEALGS:
            raise ValueError(f"unknown sensealg {sensealg!r}")
        alg_cls = getattr(gnode.algorithms, alg, None)
        if alg_cls is None:
            raise ValueError(f"the stand-in runs gnode's torch engine, which has no {alg}()")
        spec = json.loads(spec_json)
        theta_t = torch_from_julia(theta).detach().clone()
        u0_t = torch_from_julia(u0).detach().clone()
        with torch.enable_grad():
            model = from_spec(spec, theta_t).to(u0_t.device)
            for p in model.parameters():
                p.requires_grad_(bool(keep))
            u0_t.requires_grad_(bool(keep))
            control = None
            values_t = None
            if input_values is not None:
                values_t = torch_from_julia(input_values).detach().clone().requires_grad_(bool(keep))
                times = torch.as_tensor(np.asarray(input_times), dtype=u0_t.dtype, device=u0_t.device)
                control = gnode.Control(times, values_t, interpolation)
            prob = gnode.ODEProblem(model, u0_t, (t0, t1), inputs=control)
            save = torch.as_tensor(np.asarray(saveat), dtype=u0_t.dtype, device=u0_t.device)
            stops = None if len(tstops) == 0 else torch.as_tensor(np.asarray(tstops), dtype=u0_t.dtype)
            sol = gnode.solve(prob, alg_cls(), saveat=save, reltol=reltol, abstol=abstol, dt=dt, dtmin=dtmin,
                              dtmax=dtmax, maxiters=int(maxiters), tstops=stops, engine="torch", throw=False)
        torch_from_julia(u_out).copy_(sol.u.detach())
        np.asarray(tfinal_out)[:] = sol.t_final.detach().cpu().numpy()
        np.asarray(retcode_out)[:] = sol.retcodes.cpu().numpy()
        stats = torch_from_julia(stats_out)  # (B, K)
        for i, name in enumerate(contract.STAT_NAMES):
            stats[:, i] = getattr(sol.stats, name).cpu()
        if not keep:
            return 0
        handle = next(self._handles)
        self._kept[handle] = {"sol": sol, "model": model, "u0": u0_t, "values": values_t}
        return handle

    def solve_backward(self, dtheta_out, du0_out, dvalues_out, handle, cotangent) -> None:
        self._record("solve_backward!")
        k = self._kept[int(handle)]
        params = [p for _, p in k["model"].flat_entries()]
        leaves = [*params, k["u0"]] + ([k["values"]] if k["values"] is not None else [])
        grads = torch.autograd.grad(k["sol"].u, leaves, torch_from_julia(cotangent), retain_graph=True,
                                    allow_unused=True)
        grads = [torch.zeros_like(x) if g is None else g for g, x in zip(grads, leaves)]
        torch_from_julia(dtheta_out).copy_(torch.cat([g.reshape(-1) for g in grads[:len(params)]]))
        torch_from_julia(du0_out).copy_(grads[len(params)])
        if dvalues_out is not None:
            torch_from_julia(dvalues_out).copy_(grads[len(params) + 1])

    def interpolate(self, out, handle, times) -> None:
        self._record("interpolate!")
        sol = self._kept[int(handle)]["sol"]
        t = torch.as_tensor(np.asarray(times), dtype=sol.u.dtype, device=sol.u.device)
        torch_from_julia(out).copy_(sol(t).detach())

    def release(self, handle) -> None:
        self._record("release")
        self._kept.pop(int(handle), None)

    def close(self) -> None:
        self._kept.clear()


@contextlib.contextmanager
def use_standin():
    """Install a Julia thread running `StandInJulia` as the process's runtime for the duration (TESTS ONLY).

    Yields (runtime, standin); the previous runtime is put back afterwards.
    """
    standin = StandInJulia()
    runtime = JuliaThread(lambda: standin, name="gnode-julia-standin")
    old = set_runtime(runtime)
    try:
        runtime.start()
        yield runtime, standin
    finally:
        runtime.close()
        set_runtime(old)
