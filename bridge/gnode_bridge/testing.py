"""TEST SCAFFOLDING — NOT JULIA. A pure-Python stand-in for the Julia module `GnodeEngine`.

`StandInJulia` implements the entry points of `gnode_bridge.contract` with the same signatures and the
same array layouts (every array in Julia's reversed-dimension view, outputs written into the caller's
buffers), but computes with gnode's native torch engine. It exists so that the bridge's conversion,
its single-thread dispatch and its gradient scatter can be tested where Julia is not installed. It
never poses as Julia: nothing in the package uses it unless a test installs it with `use_standin()`,
and results computed through it say nothing about the Julia engine's numerics.

Like the real module it reads the options record (`contract.Request`) and refuses what Julia refuses: an
unknown algorithm, mode or vjp, an option the Julia engine does not take (`contract.ALGORITHM_OPTIONS`,
`SENSEALG_OPTIONS`), and a vjp the ensemble mode cannot use. It rebuilds the algorithm and the sensitivity
algorithm from their specs (`from_spec`) and solves with exactly those, recording them (`algorithms`,
`sensealgs`, `requests`), so a test sees an option that was dropped or changed on the way.

Differences from the real module, on purpose: every sensealg is computed by backpropagation through
the torch engine (the stand-in checks plumbing, not adjoint methods), algorithms gnode does not define
are refused, and the "batched" mode is the same computation as "ensemble".
"""

from __future__ import annotations

import contextlib
import itertools
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
        self.requests: list[contract.Request] = []
        self.algorithms: list = []  # the algorithm each solve ran, rebuilt from the request
        self.sensealgs: list = []  # the sensitivity algorithm each solve was asked for (None: forward only)
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

    def solve_forward(self, u_out, tfinal_out, retcode_out, stats_out, theta, u0, input_values, request) -> int:
        import gnode
        from gnode.algorithms import AbstractAlgorithm, AbstractSensitivityAlgorithm
        from gnode.models import from_spec

        self._record("solve_forward!")
        req = contract.Request.from_json(request)
        if req.mode not in contract.MODES or req.vjp not in contract.VJPS:
            raise ValueError(f"bad mode {req.mode!r} or vjp {req.vjp!r}")
        check_spec(req.alg, contract.ALGORITHM_OPTIONS, "algorithm")
        sensealg = None
        if req.sensealg is not None:
            check_spec(req.sensealg, contract.SENSEALG_OPTIONS, "sensealg")
            if (
                req.sensealg["name"] in contract.CONTINUOUS_ADJOINTS
                and req.mode == "ensemble"
                and req.vjp in contract.ENSEMBLE_REFUSED_VJPS
            ):
                raise ValueError(f"vjp {req.vjp!r} in the ensemble mode: {contract.ENSEMBLE_REFUSED_VJPS[req.vjp]}")
            if hasattr(gnode.algorithms, req.sensealg["name"]):
                sensealg = AbstractSensitivityAlgorithm.from_spec(req.sensealg)
        if not hasattr(gnode.algorithms, req.alg["name"]):
            raise ValueError(f"the stand-in runs gnode's torch engine, which has no {req.alg['name']}()")
        alg = AbstractAlgorithm.from_spec(req.alg)
        self.requests.append(req)
        self.algorithms.append(alg)
        self.sensealgs.append(sensealg)
        keep = req.keep
        theta_t = torch_from_julia(theta).detach().clone()
        u0_t = torch_from_julia(u0).detach().clone()
        like = {"dtype": u0_t.dtype, "device": u0_t.device}
        with torch.enable_grad():
            model = from_spec(req.model, theta_t).to(u0_t.device)
            for p in model.parameters():
                p.requires_grad_(keep)
            u0_t.requires_grad_(keep)
            control = None
            values_t = None
            if input_values is not None:
                values_t = torch_from_julia(input_values).detach().clone().requires_grad_(keep)
                control = gnode.Control(torch.tensor(req.input_times, **like), values_t, req.interpolation)
            prob = gnode.ODEProblem(model, u0_t, (req.t0, req.t1), inputs=control)
            stops = torch.tensor(req.tstops, **like) if req.tstops else None
            sol = gnode.solve(
                prob,
                alg,
                saveat=torch.tensor(req.saveat, **like),
                reltol=req.reltol,
                abstol=req.abstol,
                dt=req.dt,
                dtmin=req.dtmin,
                dtmax=req.dtmax,
                maxiters=req.maxiters,
                tstops=stops,
                engine="torch",
                throw=False,
            )
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
        grads = torch.autograd.grad(
            k["sol"].u, leaves, torch_from_julia(cotangent), retain_graph=True, allow_unused=True
        )
        grads = [torch.zeros_like(x) if g is None else g for g, x in zip(grads, leaves)]
        torch_from_julia(dtheta_out).copy_(torch.cat([g.reshape(-1) for g in grads[: len(params)]]))
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


def check_spec(spec: dict, tables: dict[str, dict[str, str]], what: str) -> None:
    """Refuse what the Julia module refuses: an unknown name or an option it does not take (recursively)."""
    name, options = spec["name"], spec["options"]
    if name not in tables:
        raise ValueError(f"unknown {what} {name!r}")
    unknown = sorted(set(options) - set(tables[name]))
    if unknown:
        raise ValueError(f"{name}: the Julia engine does not take option {unknown[0]!r}")
    for value in options.values():
        if isinstance(value, dict):
            check_spec(value, contract.ALGORITHM_OPTIONS, "algorithm")


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
