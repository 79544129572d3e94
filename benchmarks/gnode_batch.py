"""Native engine vs torchdiffeq and torchode on one random gnODE batch, forward and forward+backward.

    python benchmarks/gnode_batch.py            # batch 64, n 32, hidden 64, float64, t in [0, 20]
    python benchmarks/gnode_batch.py --quick    # fewer tolerances and repeats

Every solver integrates the same vector field, with the same weights, from the same states, saving at the same
21 times. Errors are against a reference (Vern7, rtol 1e-12, checked against SciPy DOP853 per trajectory). Each
solver runs at several tolerances; times are the minimum over repeats after a warm-up, with torch on one
thread. "At matched error" interpolates each solver's log time against log error and compares at the same
error. `overhead` is (solve time - time of the same number of bare f calls) / bare f time. Results are written
to benchmarks/results/gnode_batch.json beside the printed table.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

import gnode

N, HIDDEN, BATCH, T_END = 32, 64, 64, 20.0


class RandomGnODE(torch.nn.Module):
    """tau dh/dt = G ⊙ (-h + F): F = tanh(W2 relu(W1 h + b1) + b2), G = sigmoid(V2 relu(V1 h + c1) + c2)."""

    def __init__(self, n=N, hidden=HIDDEN, gain=1.5, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.F1, self.F2 = torch.nn.Linear(n, hidden), torch.nn.Linear(hidden, n)
        self.G1, self.G2 = torch.nn.Linear(n, hidden), torch.nn.Linear(hidden, n)
        with torch.no_grad():
            for layer in (self.F1, self.F2, self.G1, self.G2):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * gain / layer.in_features ** 0.5)
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * 0.1)
        self.calls = 0

    def forward(self, t, h):
        self.calls += 1
        F = torch.tanh(self.F2(torch.relu(self.F1(h))))
        G = torch.sigmoid(self.G2(torch.relu(self.G1(h))))
        return G * (F - h)


def reference(f, u0, ts, check=4):
    """Vern7 at rtol 1e-12 with per-trajectory steps, checked against SciPy DOP853 (rtol 1e-12) per trajectory
    on the first `check` trajectories (one batched SciPy system would crawl: it must resolve every trajectory's
    ReLU kinks at once)."""
    from scipy.integrate import solve_ivp

    with torch.no_grad():
        ref = gnode.solve(gnode.ODEProblem(f, u0, (0.0, T_END)), gnode.Vern7(), saveat=ts, reltol=1e-12, abstol=1e-14).u
    worst = 0.0
    for i in range(check):
        def rhs(t, y):
            with torch.no_grad():
                return f(torch.full((1,), t), torch.from_numpy(y)[None])[0].numpy()
        r = solve_ivp(rhs, (0.0, T_END), u0[i].numpy(), method="DOP853", t_eval=ts.numpy(), rtol=1e-12, atol=1e-14)
        assert r.success, r.message
        worst = max(worst, float((torch.from_numpy(r.y.T) - ref[i]).abs().max()))
    print(f"reference: gnode Vern7 rtol 1e-12 vs SciPy DOP853 rtol 1e-12 on {check} trajectories: max |diff| {worst:.1e}")
    return ref, worst


def solvers():
    """name → (solve(f, u0, ts, rtol, atol) → u (B, T, n)), for those installed."""
    out = {}
    for alg in (gnode.Tsit5(), gnode.DP5(), gnode.Vern7()):
        out[f"gnode {alg.name}"] = lambda f, u0, ts, rtol, atol, alg=alg: gnode.solve(
            gnode.ODEProblem(f, u0, (0.0, T_END)), alg, saveat=ts, reltol=rtol, abstol=atol).u
    out["gnode Tsit5 InterpolatingAdjoint"] = lambda f, u0, ts, rtol, atol: gnode.solve(
        gnode.ODEProblem(f, u0, (0.0, T_END)), gnode.Tsit5(), saveat=ts, reltol=rtol, abstol=atol,
        sensealg=gnode.InterpolatingAdjoint()).u
    try:
        import torchdiffeq

        out["torchdiffeq dopri5"] = lambda f, u0, ts, rtol, atol: torchdiffeq.odeint(
            f, u0, ts, method="dopri5", rtol=rtol, atol=atol).transpose(0, 1)
        out["torchdiffeq dopri5 adjoint"] = lambda f, u0, ts, rtol, atol: torchdiffeq.odeint_adjoint(
            f, u0, ts, method="dopri5", rtol=rtol, atol=atol, adjoint_params=tuple(f.parameters())).transpose(0, 1)
    except ImportError:
        print("torchdiffeq not installed: pip install torchdiffeq (or the bench extra)")
    try:
        import torchode

        def tode(method):
            def solve(f, u0, ts, rtol, atol):
                term = torchode.ODETerm(f)
                step = method(term=term)
                ctrl = torchode.IntegralController(atol=atol, rtol=rtol, term=term)
                solver = torchode.AutoDiffAdjoint(step, ctrl)
                sol = solver.solve(torchode.InitialValueProblem(y0=u0, t_eval=ts.expand(u0.shape[0], -1)))
                return sol.ys
            return solve

        out["torchode Dopri5"] = tode(torchode.Dopri5)
        out["torchode Tsit5"] = tode(torchode.Tsit5)
    except ImportError:
        print("torchode not installed: pip install torchode (or the bench extra)")
    return out


FORWARD_ONLY = {"gnode Tsit5 InterpolatingAdjoint", "torchdiffeq dopri5 adjoint"}  # measured with gradients only
GRADIENT_SKIP = {"gnode Vern7"}


def measure(fn, repeats):
    fn()  # warm-up
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 tolerances, 2 repeats, no continuous adjoints")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "gnode_batch.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    tols = [1e-4, 1e-6, 1e-8] if args.quick else [1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8]
    repeats = 2 if args.quick else 3
    f = RandomGnODE()
    u0 = torch.randn(BATCH, N, generator=torch.Generator().manual_seed(1))
    ts = torch.linspace(0.0, T_END, 21)
    ref, ref_check = reference(f, u0, ts)
    x, tt = torch.randn(BATCH, N), torch.zeros(BATCH)
    rows = []
    for name, solve in solvers().items():
        if args.quick and name in FORWARD_ONLY:
            continue  # the continuous adjoints: full run only
        for rtol in tols:
            atol = rtol * 1e-2
            row = {"solver": name, "rtol": rtol, "atol": atol}
            if name not in FORWARD_ONLY:
                with torch.no_grad():
                    f.calls = 0
                    solve(f, u0, ts, rtol, atol)
                    row["nf"] = f.calls
                    row["time_forward"], u = measure(lambda: solve(f, u0, ts, rtol, atol), repeats)
                    row["time_bare_f"], _ = measure(lambda: [f(tt, x) for _ in range(row["nf"])], repeats)
                row["error"] = float((u - ref).abs().max())
                row["overhead"] = (row["time_forward"] - row["time_bare_f"]) / row["time_bare_f"]
            if name not in GRADIENT_SKIP:
                def fwd_bwd():
                    for q in f.parameters():
                        q.grad = None
                    u = solve(f, u0, ts, rtol, atol)
                    (u ** 2).sum().backward()
                    return u
                row["time_gradient"], u = measure(fwd_bwd, repeats)
                row.setdefault("error", float((u.detach() - ref).abs().max()))
            rows.append(row)
            print(_fmt(row), flush=True)
    summary = matched(rows)
    meta = {"machine": platform.platform(), "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "batch": BATCH, "n": N,
            "hidden": HIDDEN, "t_end": T_END, "dtype": "float64", "reference_vs_scipy": ref_check}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows, "matched": summary}, indent=1))
    print(f"\nwrote {args.out}")


def _fmt(r):
    def g(k, f="{:9.4f}"):
        return f.format(r[k]) if k in r else " " * 9
    return (f"{r['solver']:36s} rtol {r['rtol']:.0e}  err {r['error']:.2e}  nf {r.get('nf', 0):6d}  "
            f"fwd {g('time_forward')} s  over x{g('overhead', '{:5.2f}')}  fwd+bwd {g('time_gradient')} s")


def matched(rows):
    """Time of each solver at the errors every solver reaches, by log-log interpolation; ratios to ours."""
    out = {}
    for key in ("time_forward", "time_gradient"):
        curves = {}
        for r in rows:
            if key in r and r["error"] > 0:
                curves.setdefault(r["solver"], []).append((math.log10(r["error"]), math.log10(r[key])))
        if not curves:
            continue
        lo = max(min(e for e, _ in c) for c in curves.values())
        hi = min(max(e for e, _ in c) for c in curves.values())
        targets = [e for e in (-3, -4, -5, -6, -7) if lo <= e <= hi]
        table = {}
        for e in targets:
            times = {}
            for name, c in curves.items():
                c = sorted(c)
                times[name] = 10 ** float(np.interp(e, [p[0] for p in c], [p[1] for p in c]))
            table[f"1e{e}"] = times
        out[key] = table
        print(f"\n{key} at matched max error (seconds; ratio = solver / fastest gnode):")
        names = sorted(curves)
        print(" " * 10 + "".join(f"{n[:22]:>24s}" for n in names))
        for err, times in table.items():
            best = min(v for n, v in times.items() if n.startswith("gnode"))
            print(f"{err:>10s}" + "".join(f"{times[n]:14.4f} (x{times[n] / best:4.1f})" for n in names))
    return out


if __name__ == "__main__":
    main()
