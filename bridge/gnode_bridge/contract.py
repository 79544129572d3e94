"""The contract between the Python bridge and the Julia module `GnodeEngine` (julia/GnodeEngine.jl).

This module is the one place that writes the crossing down. The bridge calls nothing in Julia but the
entry points below; the pure-Python stand-in (`gnode_bridge.testing.StandInJulia`, test scaffolding)
implements the same entry points with the native torch engine so that the conversion, threading and
autograd plumbing can be tested where Julia is absent. Tests check that the Julia sources define every
name listed here (`tests/test_bridge_contract.py`).

Array layout
------------
Times (saveat, tstops, input times) and the small integer outputs always live on the host; the state,
parameters, inputs and gradients live where the tensors do.

Every array crosses with its dimensions *reversed*: a C-contiguous torch tensor of shape (B, T, n) is
handed to Julia as the column-major array of size (n, T, B) over the same memory. On the CPU the bridge
passes `numpy_view.T` (zero-copy; PythonCall wraps it as a `PyArray`); on CUDA it passes the tensor
itself and the Julia side takes it with `DLPack.from_dlpack` (a `CuArray` over the same memory, also
with reversed dimensions). Below, shapes are written as Julia sees them.

Outputs are written by Julia *into buffers the caller allocated* (the `!` entry points). So no Julia-
owned memory ever escapes to Python: a Julia array wrapped for numpy would be released by whichever
Python thread drops it last, and that would enter Julia from a thread other than its owner.

Entry points (Julia names; all positional)
------------------------------------------
api_version() -> Int
    `API_VERSION` below; the bridge refuses a Julia module with another.

solve_forward!(u_out, tfinal_out, retcode_out, stats_out,
               spec_json, theta, u0, t0, t1, saveat,
               input_times, input_values, interpolation,
               alg, sensealg, vjp, checkpointing, adjoint_alg, adjoint_reltol, adjoint_abstol,
               reltol, abstol, dt, dtmin, dtmax, maxiters, tstops, keep, mode) -> Int (handle)
    u_out       (n, S, B)  float, written: u at the S `saveat` times (NaN after a trajectory failed)
    tfinal_out  (B,)       Float64 host array, written: where each trajectory stopped
    retcode_out (B,)       Int64 host array, written: `RETCODES[name]` (gnode.ReturnCode values)
    stats_out   (K, B)     Int64 host array, written: counters in the order of `STAT_NAMES`
    spec_json   String     the model's architecture spec (`model.spec()`) as JSON
    theta       (P,)       the flat parameter vector (`model.flat_parameters()`)
    u0          (n, B)
    t0, t1      Float64    the time span (t1 < t0 integrates backwards)
    saveat      (S,)       host array, monotone in the direction of integration
    input_times (Ti,) host array or nothing;  input_values (d, Ti, Bv) or nothing, Bv in (1, B)
    interpolation String   "zoh" | "linear" | "cubic" (`gnode.Control`)
    alg         String     a name in `ALGORITHMS`
    sensealg    String     a name in `SENSEALGS`, or "" for a forward-only solve
    vjp         String     a name in `VJPS` (how the adjoint's vector-Jacobian products are taken)
    checkpointing Bool     InterpolatingAdjoint/GaussAdjoint: re-solve forward from checkpoints
    adjoint_alg String     the method of the backward solve ("" = `alg`)
    adjoint_reltol, adjoint_abstol  Float64 (NaN = those of the forward solve)
    reltol, abstol Float64; dt, dtmin, dtmax: Float64 or nothing; maxiters Int
    tstops      (M,)       host array: extra times to step onto (may be empty)
    keep        Bool       keep the forward solution(s) for `solve_backward!`/`interpolate!`
    mode        String     "ensemble" (one solve per trajectory: own steps, own statistics; CPU) or
                           "batched" (the whole batch as one system, shared steps; what CUDA arrays use)
    returns a handle (> 0) when `keep`, else 0.

solve_backward!(dtheta_out, du0_out, dvalues_out, handle, cotangent) -> nothing
    cotangent   (n, S, B)  dL/du at the saved times
    dtheta_out  (P,)       written: dL/dtheta
    du0_out     (n, B)     written: dL/du0
    dvalues_out (d, Ti, Bv) written: dL/d input values, or nothing when the problem has no inputs

interpolate!(out, handle, times) -> nothing
    times (K,); out (n, K, B) written: the dense output of the kept solution at `times`

release(handle) -> nothing
    forget a kept solution (idempotent)
"""

from __future__ import annotations

API_VERSION = 1

#: Julia module name and the file (relative to the repository's julia/ folder) that defines it.
MODULE = "GnodeEngine"
MODULE_FILE = "GnodeEngine.jl"

#: The entry points, in the order documented above, with their positional arity.
ENTRY_POINTS: dict[str, int] = {
    "api_version": 0,
    "solve_forward!": 29,
    "solve_backward!": 5,
    "interpolate!": 3,
    "release": 1,
}

#: Algorithms by OrdinaryDiffEq.jl name. Value: (adaptive, stiff). Every gnode algorithm class of the
#: same name is accepted by the Julia engine; the others are reachable only when gnode defines them.
ALGORITHMS: dict[str, tuple[bool, bool]] = {
    "Euler": (False, False),
    "Midpoint": (False, False),
    "RK4": (False, False),
    "BS3": (True, False),
    "DP5": (True, False),
    "Tsit5": (True, False),
    "Vern7": (True, False),
    "Vern9": (True, False),
    "Rosenbrock23": (True, True),
    "Rodas4": (True, True),
    "Rodas5P": (True, True),
    "ImplicitEuler": (True, True),
    "Trapezoid": (True, True),
    "TRBDF2": (True, True),
    "KenCarp4": (True, True),
    "Kvaerno5": (True, True),
    "FBDF": (True, True),
    "QNDF": (True, True),
    "RadauIIA5": (True, True),
    "AutoTsit5": (True, True),  # AutoTsit5(Rodas5P()): Tsit5 switching to Rodas5P where stiff
    "AutoVern7": (True, True),  # AutoVern7(Rodas5P())
}

#: Sensitivity algorithms by gnode name -> what the Julia side runs (SciMLSensitivity.jl).
SENSEALGS: dict[str, str] = {
    "BackpropAdjoint": "ForwardDiff through the solver (discretise-then-differentiate; for small "
                       "parameter counts, cost grows with the number of parameters)",
    "ForwardDiffSensitivity": "ForwardDiff through the solver (as SciMLSensitivity.ForwardDiffSensitivity)",
    "BacksolveAdjoint": "SciMLSensitivity.BacksolveAdjoint(checkpointing = true) via adjoint_sensitivities",
    "InterpolatingAdjoint": "SciMLSensitivity.InterpolatingAdjoint(checkpointing = ...) via adjoint_sensitivities",
    "QuadratureAdjoint": "SciMLSensitivity.QuadratureAdjoint via adjoint_sensitivities",
    "GaussAdjoint": "SciMLSensitivity.GaussAdjoint(checkpointing = ...) via adjoint_sensitivities",
}

#: How vector-Jacobian products of the vector field are taken inside the continuous adjoints.
#: "auto" lets SciMLSensitivity choose (Enzyme, then ReverseDiff with a compiled tape only when the
#: field has no value-dependent branches); "ReverseDiffVJP" is never compiled here because the input
#: lookup branches on t; "ForwardDiff" builds Jacobians (autojacvec = false); "ZygoteVJP" is what the
#: batched (CUDA) mode uses, whose vector field is out-of-place.
VJPS = ("auto", "EnzymeVJP", "ReverseDiffVJP", "ForwardDiff", "ZygoteVJP")

MODES = ("ensemble", "batched")

#: Order of the rows of `stats_out`: gnode.SolveStats' names. OrdinaryDiffEq's DEStats has no count of
#: stiffness switches, so `nstiffswitch` is always written as 0 by the Julia engine.
STAT_NAMES = ("nf", "naccept", "nreject", "njacs", "nw", "nsolve", "nnonliniter", "nnonlinconvfail",
              "nstiffswitch")

#: gnode.ReturnCode values written to `retcode_out`, by SciMLBase.ReturnCode name. Julia codes with no
#: gnode counterpart: Terminated -> Success, DtNaN -> Unstable, anything else -> Failure.
RETCODES: dict[str, int] = {
    "Default": 0,
    "Success": 1,
    "MaxIters": 2,
    "DtLessThanMin": 3,
    "Unstable": 4,
    "ConvergenceFailure": 5,
    "Failure": 6,
}
