"""The contract between the Python bridge and the Julia module `GnodeEngine` (julia/GnodeEngine.jl).

This module is the one place that writes the crossing down. The bridge calls nothing in Julia but the
entry points below; the pure-Python stand-in (`gnode_bridge.testing.StandInJulia`, test scaffolding)
implements the same entry points with the native torch engine so that the conversion, threading and
autograd plumbing can be tested where Julia is absent. Tests check that the Julia sources define every
name listed here (`tests/test_bridge_contract.py`).

Array layout
------------
Times (saveat, tstops, input times) cross as numbers in the options record, and the small integer outputs
always live on the host; the state, parameters, inputs and gradients live where the tensors do.

Every array crosses with its dimensions *reversed*: a C-contiguous torch tensor of shape (B, T, n) is
handed to Julia as the column-major array of size (n, T, B) over the same memory. On the CPU the bridge
passes `numpy_view.T` (zero-copy; PythonCall wraps it as a `PyArray`); on CUDA it passes the tensor
itself and the Julia side takes it with `DLPack.from_dlpack` (a `CuArray` over the same memory, also
with reversed dimensions). DLPack hands memory over without ordering the two libraries' CUDA streams, so
the bridge waits for torch's current stream before each call and for Julia's after it. Below, shapes are
written as Julia sees them.

Outputs are written by Julia *into buffers the caller allocated* (the `!` entry points). So no Julia-
owned memory ever escapes to Python: a Julia array wrapped for numpy would be released by whichever
Python thread drops it last, and that would enter Julia from a thread other than its owner.

Entry points (Julia names; all positional)
------------------------------------------
api_version() -> Int
    `API_VERSION` below; the bridge refuses a Julia module with another.

solve_forward!(u_out, tfinal_out, retcode_out, stats_out, theta, u0, input_values, request) -> Int (handle)
    u_out        (n, S, B)  float, written: u at the S `saveat` times (NaN after a trajectory failed)
    tfinal_out   (B,)       Float64 host array, written: where each trajectory stopped
    retcode_out  (B,)       Int64 host array, written: `RETCODES[name]` (gnode.ReturnCode values)
    stats_out    (K, B)     Int64 host array, written: counters in the order of `STAT_NAMES`
    theta        (P,)       the flat parameter vector (`model.flat_parameters()`; P may be 0)
    u0           (n, B)
    input_values (d, Ti, Bv) or nothing, Bv in (1, B)
    request      String     the options record `Request` below, as JSON (`Request.to_json`)
    returns a handle (> 0) when `request.keep`, else 0.

solve_backward!(dtheta_out, du0_out, dvalues_out, handle, cotangent) -> nothing
    cotangent   (n, S, B)  dL/du at the saved times
    dtheta_out  (P,)       written: dL/dtheta
    du0_out     (n, B)     written: dL/du0
    dvalues_out (d, Ti, Bv) written: dL/d input values, or nothing when the problem has no inputs

interpolate!(out, handle, times) -> nothing
    times (K,); out (n, K, B) written: the dense output of the kept solution at `times`

release(handle) -> nothing
    forget a kept solution (idempotent)

The options record
------------------
Everything about a solve that is not an array buffer crosses as one record, `Request` (its fields are
documented there), written once here and read once in Julia (`julia/src/request.jl`, whose struct has the
same fields in the same order: a test checks). The algorithm and the sensitivity algorithm cross as their
specs (`to_spec()`: name and every option, nested algorithms as nested specs), trimmed to the options the
Julia engine forwards (`ALGORITHM_OPTIONS`, `SENSEALG_OPTIONS`, with the SciML keyword each becomes). An
option it does not forward is refused by name before anything crosses, unless it has its default value;
`NOT_FORWARDED` says why for the ones known to have no SciML counterpart. The Julia side refuses any option
it does not know, so an option dropped or renamed on one side cannot go unnoticed.
"""

from __future__ import annotations

import dataclasses
import json

API_VERSION = 2

#: Julia module name and the file (relative to the repository's julia/ folder) that defines it.
MODULE = "GnodeEngine"
MODULE_FILE = "GnodeEngine.jl"

#: The entry points, in the order documented above, with their positional arity.
ENTRY_POINTS: dict[str, int] = {
    "api_version": 0,
    "solve_forward!": 8,
    "solve_backward!": 5,
    "interpolate!": 3,
    "release": 1,
}


@dataclasses.dataclass(frozen=True)
class Request:
    """The options record of one `solve_forward!` call (crosses as JSON; `julia/src/request.jl` reads it).

    model         the vector field's architecture spec (`model.spec()`, format "gnode.vector_field")
    t0, t1        the time span (t1 < t0 integrates backwards)
    saveat        the S output times, monotone in the direction of integration
    input_times   the inputs' Ti sample times; empty when the problem has no inputs
    interpolation "zoh" | "linear" | "cubic" (`gnode.Control`)
    alg           the algorithm's spec (`alg.to_spec()`, options trimmed as the module docstring says)
    sensealg      the sensitivity algorithm's spec, or None for a forward-only solve
    vjp           how the continuous adjoints take vector-Jacobian products (`VJPS`)
    reltol, abstol  tolerances of the forward solve
    dt, dtmin, dtmax  first (fixed-step methods: the) step and bounds on |dt|, or None
    maxiters      steps allowed per trajectory
    tstops        extra times to step onto exactly (may be empty)
    keep          keep the forward solution(s) for `solve_backward!` / `interpolate!`
    mode          "ensemble" (one solve per trajectory: own steps, own statistics; CPU) or "batched" (the
                  whole batch as one system, shared steps; what CUDA arrays use)
    """

    model: dict
    t0: float
    t1: float
    saveat: list[float]
    input_times: list[float]
    interpolation: str
    alg: dict
    sensealg: dict | None
    vjp: str
    reltol: float
    abstol: float
    dt: float | None
    dtmin: float | None
    dtmax: float | None
    maxiters: int
    tstops: list[float]
    keep: bool
    mode: str

    def to_json(self) -> str:
        """Plain JSON (non-finite numbers are an error here rather than invalid JSON in Julia)."""
        return json.dumps(dataclasses.asdict(self), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Request:
        """The record `to_json` wrote; refuses missing or extra fields by name."""
        data = json.loads(text)
        names = [f.name for f in dataclasses.fields(cls)]
        missing, extra = sorted(set(names) - set(data)), sorted(set(data) - set(names))
        if missing or extra:
            raise ValueError(f"request: missing fields {missing}, unknown fields {extra}")
        return cls(**data)


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
    "RadauIIA9": (True, True),
    "AutoTsit5": (True, True),  # AutoTsit5(stiffalg): Tsit5 switching to stiffalg where stiff
    "AutoVern7": (True, True),  # AutoVern7(stiffalg)
}

# OrdinaryDiffEq's SDIRK methods take the Newton iteration's settings as `nlsolve = NLNewton(...)`
# (OrdinaryDiffEqNonlinearSolve, src/type.jl); gnode's ESDIRK classes carry them as options.
_ESDIRK = {
    "kappa": "nlsolve = NLNewton(κ = kappa)",
    "max_iter": "nlsolve = NLNewton(max_iter = max_iter)",
    "fast_rate": "nlsolve = NLNewton(fast_convergence_cutoff = fast_rate)",
    "smooth_est": "smooth_est",
}
# AutoTsit5(stiffalg; kwargs...) = AutoAlgSwitch(Tsit5(), stiffalg; kwargs...), whose keywords are
# AutoSwitch's (OrdinaryDiffEqCore, src/composite_algs.jl).
_AUTO = {
    "stiffalg": "the stiff method (positional), built from its nested spec",
    "maxstiffstep": "maxstiffstep",
    "maxnonstiffstep": "maxnonstiffstep",
    "nonstifftol": "nonstifftol",
    "stifftol": "stifftol",
    "stiffalgfirst": "stiffalgfirst",
}

# RadauIIA5/RadauIIA9(; κ, maxiters, fast_convergence_cutoff) (OrdinaryDiffEqFIRK, src/algorithms.jl), the same
# tests on η ‖Δw‖ and η as gnode's (firk_perform_step.jl).
_RADAU = {
    "kappa": "κ (None: OrdinaryDiffEq's default 1/100, where the torch engine uses RADAU5's FNEWT)",
    "max_iter": "maxiters",
    "fast_convergence_cutoff": "fast_convergence_cutoff",
}

#: The options the Julia engine forwards, per algorithm, with the OrdinaryDiffEq keyword each becomes.
ALGORITHM_OPTIONS: dict[str, dict[str, str]] = {
    **{name: {} for name in ALGORITHMS},
    "TRBDF2": _ESDIRK,
    "KenCarp4": _ESDIRK,
    "Kvaerno5": _ESDIRK,
    "RadauIIA5": _RADAU,
    "RadauIIA9": _RADAU,
    "AutoTsit5": _AUTO,
    "AutoVern7": _AUTO,
}

_ADJOINT = {
    "alg": "the backward solve's method: adjoint_sensitivities(sol, alg; ...) (None: the forward one)",
    "reltol": "adjoint_sensitivities(...; reltol) (None: the forward solve's)",
    "abstol": "adjoint_sensitivities(...; abstol) (None: the forward solve's)",
}

#: The options the Julia engine forwards, per sensitivity algorithm, with the SciMLSensitivity keyword each
#: becomes. BacksolveAdjoint without a `checkpointing` option runs SciMLSensitivity's default (true).
SENSEALG_OPTIONS: dict[str, dict[str, str]] = {
    "BackpropAdjoint": {},
    "ForwardDiffSensitivity": {},
    "BacksolveAdjoint": {**_ADJOINT, "checkpointing": "BacksolveAdjoint(checkpointing)"},
    "InterpolatingAdjoint": {**_ADJOINT, "checkpointing": "InterpolatingAdjoint(checkpointing)"},
    "QuadratureAdjoint": {
        **_ADJOINT,
        "reltol": "adjoint_sensitivities(...; reltol), which QuadratureAdjoint "
        "uses for the adjoint solve and the quadrature alike (None: the forward solve's)",
        "abstol": "adjoint_sensitivities(...; abstol), likewise",
    },
    "GaussAdjoint": {**_ADJOINT, "checkpointing": "GaussAdjoint(checkpointing)"},
}

#: Why `solve(..., controller=...)` other than the default is refused: OrdinaryDiffEq's controller API moved within
#: the compat range (solve keywords gamma/qmin/qmax/qoldinit in OrdinaryDiffEqCore 1, keywords of PIController in
#: 4), so the engine runs each method's default PI controller, whose constants are gnode's PIController() defaults.
CONTROLLER = "it runs OrdinaryDiffEq's default step-size controller of each method"

#: Options of gnode classes with no SciML counterpart: accepted at their default only, refused otherwise.
NOT_FORWARDED: dict[tuple[str, str], str] = {
    ("QuadratureAdjoint", "order"): "SciMLSensitivity's QuadratureAdjoint integrates the parameter gradient with "
    "QuadGK's adaptive Gauss–Kronrod rule to the adjoint tolerances, not with a "
    "fixed Gauss–Legendre rule per step",
}

#: Sensitivity algorithms by gnode name -> what the Julia side runs (SciMLSensitivity.jl).
SENSEALGS: dict[str, str] = {
    "BackpropAdjoint": "ForwardDiff through the solver (discretise-then-differentiate; for small "
    "parameter counts, cost grows with the number of parameters)",
    "ForwardDiffSensitivity": "ForwardDiff through the solver (as SciMLSensitivity.ForwardDiffSensitivity)",
    "BacksolveAdjoint": "SciMLSensitivity.BacksolveAdjoint(checkpointing = ...) via adjoint_sensitivities",
    "InterpolatingAdjoint": "SciMLSensitivity.InterpolatingAdjoint(checkpointing = ...) via adjoint_sensitivities",
    "QuadratureAdjoint": "SciMLSensitivity.QuadratureAdjoint via adjoint_sensitivities",
    "GaussAdjoint": "SciMLSensitivity.GaussAdjoint(checkpointing = ...) via adjoint_sensitivities",
}

#: How vector-Jacobian products of the vector field are taken inside the continuous adjoints.
#: "auto" is resolved once per backward solve as SciMLSensitivity's own automatic choice would be: in the
#: ensemble mode EnzymeVJP if Enzyme differentiates the field, else ReverseDiffVJP (never compiled here:
#: the input lookup branches on t); in the batched mode ZygoteVJP. "ForwardDiff" builds Jacobians
#: (autojacvec = false). "ZygoteVJP" needs the batched mode's out-of-place field: Zygote refuses the
#: ensemble mode's in-place writes, so that combination is refused (`ENSEMBLE_REFUSED_VJPS`).
VJPS = ("auto", "EnzymeVJP", "ReverseDiffVJP", "ForwardDiff", "ZygoteVJP")

#: VJPs the ensemble mode (in-place field writing into a workspace) cannot use, and why.
ENSEMBLE_REFUSED_VJPS: dict[str, str] = {
    "ZygoteVJP": "Zygote does not differentiate the ensemble mode's in-place vector field (it writes into a "
    "workspace, and Zygote refuses array mutation)",
}

#: Sensitivity algorithms that run `adjoint_sensitivities` (and so use the `vjp`); the others differentiate
#: through the solver with ForwardDiff.
CONTINUOUS_ADJOINTS = ("BacksolveAdjoint", "InterpolatingAdjoint", "QuadratureAdjoint", "GaussAdjoint")

MODES = ("ensemble", "batched")

#: Order of the rows of `stats_out`: gnode.SolveStats' names. OrdinaryDiffEq's DEStats has no count of
#: stiffness switches, so `nstiffswitch` is always written as 0 by the Julia engine.
STAT_NAMES = ("nf", "naccept", "nreject", "njacs", "nw", "nsolve", "nnonliniter", "nnonlinconvfail", "nstiffswitch")

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
