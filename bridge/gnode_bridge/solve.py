"""The "julia" engine's solve: problem -> options record + contract call -> `gnode.ODESolution`, with gradients.

`solve(prob, alg, sensealg, opts, config=...)` is what `gnode.engines.julia.JuliaEngine.solve` runs, with the
engine instance's `EngineConfig`. The algorithm and the sensitivity algorithm cross as their specs
(`to_spec()`), trimmed to the options the Julia engine forwards and refused by name otherwise (`engine_spec`),
inside one options record (`contract.Request`). When anything needs a gradient the solve goes through
`JuliaSolve`, a `torch.autograd.Function` whose forward calls the Julia solve (keeping the solution there) and
whose backward sends the output cotangent dL/du(saveat) to Julia and scatters the flat gradient it returns onto
the model's parameters (in `flat_entries()` order), onto u0 and onto the input values. Every call is made on
the Julia thread (`runtime.py`), including a backward that PyTorch runs on a thread of its own.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from gnode_bridge import contract
from gnode_bridge.convert import check_dtype, host_array, julia_view
from gnode_bridge.runtime import JuliaThread, get_runtime


@dataclass(frozen=True)
class EngineConfig:
    """Options of the julia engine that are not problem-level (held by each `JuliaEngine` instance, so they
    travel with it, pickled, to Ray and torch.distributed workers).

    mode: "ensemble" (one solve per trajectory, own steps and statistics), "batched" (one system for the
          whole batch, shared steps; needed for CUDA tensors) or None (ensemble on CPU, batched on CUDA).
    vjp:  how the continuous adjoints take vector-Jacobian products (`contract.VJPS`).
    keep: keep forward solutions even without gradients, so that `sol(t)` (dense output) works.
    default_sensealg: the sensealg used when gradients are needed and `sensealg=None`.
    """

    mode: str | None = None
    vjp: str = "auto"
    keep: bool = False
    default_sensealg: str = "InterpolatingAdjoint"

    def __post_init__(self):
        if self.mode not in (None, *contract.MODES):
            raise ValueError(f"JuliaEngine: mode must be one of {contract.MODES} or None, got {self.mode!r}")
        if self.vjp not in contract.VJPS:
            raise ValueError(f"JuliaEngine: vjp must be one of {contract.VJPS}, got {self.vjp!r}")
        if self.mode == "ensemble" and self.vjp in contract.ENSEMBLE_REFUSED_VJPS:
            raise ValueError(_ensemble_vjp_message(self.vjp))
        if not isinstance(self.keep, bool):
            raise TypeError(f"JuliaEngine: keep must be True or False, got {self.keep!r}")
        if self.default_sensealg not in contract.SENSEALGS:
            raise ValueError(
                f"JuliaEngine: default_sensealg must be one of {sorted(contract.SENSEALGS)}, "
                f"got {self.default_sensealg!r}"
            )


def _ensemble_vjp_message(vjp: str) -> str:
    return (
        f"JuliaEngine: vjp={vjp!r} cannot run in the 'ensemble' mode: {contract.ENSEMBLE_REFUSED_VJPS[vjp]}; "
        "use vjp='EnzymeVJP' or 'auto', or mode='batched'"
    )


# -- the model ----------------------------------------------------------------------------------------
def model_parts(prob) -> tuple[dict, list[torch.Tensor]]:
    """(spec, parameters in flat order) of the problem's vector field, or a clear error."""
    f = prob.f
    if not (callable(getattr(f, "spec", None)) and callable(getattr(f, "flat_entries", None))):
        raise TypeError(
            "the julia engine integrates gnODE-family vector fields, which describe themselves with "
            "spec() (gnode.models.GatedNODE, NeuralODE, MinimalGRU, ElmanRNN); prob.f is a "
            f"{type(f).__name__}. Solve arbitrary callables with engine='torch'."
        )
    spec = f.spec()
    if spec.get("format") != "gnode.vector_field":
        raise TypeError(
            f"the julia engine integrates vector fields (spec format 'gnode.vector_field'), "
            f"got {spec.get('format')!r}; pass the model's vector field as prob.f"
        )
    params = [p for _, p in f.flat_entries()]
    u0 = prob.u0
    for name, p in f.flat_entries():
        if p.dtype != u0.dtype or p.device != u0.device:
            raise TypeError(
                f"parameter {name} is {p.dtype} on {p.device} but u0 is {u0.dtype} on "
                f"{u0.device}; the julia engine solves in one precision on one device "
                "(move the model with .to(u0))"
            )
    own = {id(p) for p in params}
    foreign = [i for i, p in enumerate(prob.params) if p.requires_grad and id(p) not in own]
    if foreign:
        raise ValueError(
            f"prob.params[{foreign[0]}] is not a parameter of the model; the julia engine "
            "differentiates only the model's own parameters, u0 and the input values"
        )
    d_in = int(spec["d_in"])
    if d_in > 0 and prob.inputs is None:
        raise ValueError(
            f"the model reads an input of dimension {d_in} but the problem has no inputs; "
            "pass inputs=gnode.Control(times, values)"
        )
    if prob.inputs is not None and prob.inputs.dim != d_in:
        raise ValueError(f"the inputs have dimension {prob.inputs.dim} but the model reads {d_in}")
    return spec, params


def flat_theta(params: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """The parameters as one detached 1-D vector (empty, of `like`'s dtype and device, for a parameterless field)."""
    if not params:
        return like.new_zeros(0)
    return torch.cat([p.detach().reshape(-1) for p in params])


# -- algorithms as the Julia engine takes them ----------------------------------------------------------
def engine_spec(obj, tables: dict[str, dict[str, str]], what: str) -> dict:
    """`obj.to_spec()` with only the options the Julia engine forwards (`tables[name]`). Any other option is
    refused by name unless it has its default value; nested algorithms are checked the same way."""
    spec = obj.to_spec()
    name = spec["name"]
    if name not in tables:
        raise ValueError(f"the julia engine has no {what} {name}(); it has {', '.join(tables)}")
    forwarded = tables[name]
    options = {}
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        value = getattr(obj, f.name)
        if f.name in forwarded:
            nested = isinstance(spec["options"][f.name], dict)
            options[f.name] = (
                engine_spec(value, contract.ALGORITHM_OPTIONS, "algorithm") if nested else spec["options"][f.name]
            )
        elif value != _default(f):
            why = contract.NOT_FORWARDED.get((name, f.name), f"the SciML {name} has no counterpart of it")
            raise ValueError(
                f"the julia engine does not take {name}({f.name}=...): {why}. Leave {f.name} at its "
                f"default ({_default(f)!r}) or solve with engine='torch'"
            )
    return {"name": name, "options": options}


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


# -- the request --------------------------------------------------------------------------------------
def build_request(
    prob, alg, sensealg, opts, spec: dict, config: EngineConfig, grad: bool, keep: bool
) -> contract.Request:
    """The options record of this solve; everything the Julia engine cannot honour is refused here, by name,
    before anything crosses."""
    alg_spec = engine_spec(alg, contract.ALGORITHM_OPTIONS, "algorithm")
    controller = getattr(opts, "controller", None)
    if controller is not None and controller != type(controller)():
        raise ValueError(
            f"the julia engine does not take controller={controller!r}: {contract.CONTROLLER}. Leave "
            "controller unset or solve with engine='torch'"
        )
    u0 = prob.u0
    mode = config.mode or ("batched" if u0.device.type == "cuda" else "ensemble")
    if u0.device.type == "cuda" and mode != "batched":
        raise ValueError(
            "CUDA tensors are solved in the julia engine's 'batched' mode; use JuliaEngine(mode='batched') or mode=None"
        )
    sense_spec = None
    if grad:
        if sensealg is None:
            sense_spec = {"name": config.default_sensealg, "options": {}}
        else:
            sense_spec = engine_spec(sensealg, contract.SENSEALG_OPTIONS, "sensealg")
        if (
            sense_spec["name"] in contract.CONTINUOUS_ADJOINTS
            and mode == "ensemble"
            and config.vjp in contract.ENSEMBLE_REFUSED_VJPS
        ):
            raise ValueError(_ensemble_vjp_message(config.vjp))
    inputs = prob.inputs
    return contract.Request(
        model=spec,
        t0=float(prob.tspan[0]),
        t1=float(prob.tspan[1]),
        saveat=_floats(opts.saveat),
        input_times=[] if inputs is None else _floats(inputs.times),
        interpolation="zoh" if inputs is None else inputs.interpolation,
        alg=alg_spec,
        sensealg=sense_spec,
        vjp=config.vjp,
        reltol=float(opts.reltol),
        abstol=float(opts.abstol),
        dt=_optional(opts.dt),
        dtmin=_optional(opts.dtmin),
        dtmax=_optional(opts.dtmax),
        maxiters=int(opts.maxiters),
        tstops=[] if opts.tstops is None else _floats(opts.tstops),
        keep=bool(keep),
        mode=mode,
    )


def _floats(t: torch.Tensor) -> list[float]:
    return host_array(t).tolist()


def _optional(v) -> float | None:
    return None if v is None else float(v)


def forward(
    runtime: JuliaThread, request: contract.Request, u0: torch.Tensor, values: torch.Tensor | None, theta: torch.Tensor
) -> ForwardResult:
    """Call `solve_forward!`; outputs come back in torch layout."""
    B, n = u0.shape
    u = torch.empty(B, len(request.saveat), n, dtype=u0.dtype, device=u0.device)
    tfinal = np.empty(B, dtype=np.float64)
    retcodes = np.empty(B, dtype=np.int64)
    stats = np.empty((B, len(contract.STAT_NAMES)), dtype=np.int64)
    handle = runtime.call(
        _entry("solve_forward"),
        julia_view(u),
        tfinal,
        retcodes,
        stats.T,
        julia_view(theta.contiguous()),
        julia_view(u0.contiguous()),
        julia_view(None if values is None else values.contiguous()),
        request.to_json(),
    )
    kept = KeptSolution(runtime, int(handle)) if request.keep else None
    return ForwardResult(
        u,
        torch.from_numpy(tfinal).to(u0.device, u0.dtype),
        torch.from_numpy(retcodes).to(u0.device),
        torch.from_numpy(stats).to(u0.device),
        kept,
    )


@dataclass
class ForwardResult:
    u: torch.Tensor  # (B, S, n)
    tfinal: torch.Tensor  # (B,)
    retcodes: torch.Tensor  # (B,) gnode.ReturnCode values
    stats: torch.Tensor  # (B, K) in contract.STAT_NAMES order
    kept: KeptSolution | None


def _entry(name: str):
    """A call of backend method `name`, to run on the Julia thread."""

    def call(backend, *args):
        return getattr(backend, name)(*args)

    call.__name__ = name
    return call


def _release(backend, handle: int) -> None:
    backend.release(handle)


class KeptSolution:
    """A forward solution kept in Julia under `handle`; released when this object is collected."""

    def __init__(self, runtime: JuliaThread, handle: int):
        self.runtime, self.handle = runtime, handle
        self._finalizer = weakref.finalize(self, runtime.post, _release, handle)

    def interpolate(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Dense output (B, K, n) at times `t` (K,); not differentiable."""
        B, _, n = like.shape
        out = torch.empty(B, t.numel(), n, dtype=like.dtype, device=like.device)
        self.runtime.call(_entry("interpolate"), julia_view(out), self.handle, host_array(t))
        return out

    def release(self) -> None:
        self._finalizer()


# -- autograd -----------------------------------------------------------------------------------------
class JuliaSolve(torch.autograd.Function):
    """u(saveat) = Julia solve of (u0, input values, model parameters); gradients by SciMLSensitivity.

    forward(ctx, request, runtime, u0, values_or_None, *params) -> (u, tfinal, retcodes, stats)
    backward: dL/du -> Julia `solve_backward!` -> (dL/dtheta flat, dL/du0, dL/dvalues); dL/dtheta is
    split in `flat_entries()` order and reshaped onto each parameter.
    """

    @staticmethod
    def forward(ctx, request: contract.Request, runtime: JuliaThread, u0, values, *params):
        res = forward(
            runtime, request, u0.detach(), None if values is None else values.detach(), flat_theta(list(params), u0)
        )
        ctx.kept = res.kept
        ctx.shapes = [p.shape for p in params]
        ctx.values_shape = None if values is None else values.shape
        ctx.u0_shape = u0.shape
        ctx.mark_non_differentiable(res.tfinal, res.retcodes, res.stats)
        return res.u, res.tfinal, res.retcodes, res.stats

    @staticmethod
    def backward(ctx, grad_u, *unused):
        kept: KeptSolution = ctx.kept
        like = grad_u
        dtheta = like.new_empty(sum(math.prod(s) for s in ctx.shapes))
        du0 = like.new_empty(ctx.u0_shape)
        dvalues = None if ctx.values_shape is None else like.new_empty(ctx.values_shape)
        kept.runtime.call(
            _entry("solve_backward"),
            julia_view(dtheta),
            julia_view(du0),
            julia_view(dvalues),
            kept.handle,
            julia_view(grad_u.contiguous()),
        )
        grads = scatter(dtheta, ctx.shapes)
        return (
            None,
            None,
            du0 if ctx.needs_input_grad[2] else None,
            dvalues if ctx.needs_input_grad[3] else None,
            *grads,
        )


def scatter(flat: torch.Tensor, shapes) -> list[torch.Tensor]:
    """Split a flat gradient into tensors of `shapes` (row-major, in order)."""
    sizes = [math.prod(s) for s in shapes]
    if sum(sizes) != flat.numel():
        raise RuntimeError(f"the flat gradient has {flat.numel()} entries but the parameters {sum(sizes)}")
    return [g.view(s) for g, s in zip(torch.split(flat, sizes), shapes)]


# -- the engine's solve -------------------------------------------------------------------------------
def solve(prob, alg, sensealg, opts, *, config: EngineConfig, runtime: JuliaThread | None = None):
    """Solve `prob` on the Julia engine with the settings `config` (see the module docstring); returns a
    `gnode.ODESolution`."""
    from gnode.retcode import ReturnCode, SolveError
    from gnode.solution import ODESolution, SolveStats

    runtime = runtime or get_runtime()
    spec, params = model_parts(prob)
    u0 = prob.u0
    check_dtype("u0", u0)
    values = None if prob.inputs is None else prob.inputs.values
    grad = torch.is_grad_enabled() and (
        u0.requires_grad or any(p.requires_grad for p in params) or (values is not None and values.requires_grad)
    )
    request = build_request(prob, alg, sensealg, opts, spec, config, grad, keep=grad or config.keep)
    if grad:
        u, tfinal, retcodes, stats = JuliaSolve.apply(request, runtime, u0, values, *params)
        kept = _kept_of(u)  # the autograd node (ctx) holds it
    else:
        res = forward(
            runtime, request, u0.detach(), None if values is None else values.detach(), flat_theta(params, u0)
        )
        u, tfinal, retcodes, stats, kept = res.u, res.tfinal, res.retcodes, res.stats, res.kept
    t = opts.saveat
    interp = None
    if kept is not None:
        like = u.detach()

        def interp(tt, kept=kept, like=like):
            return kept.interpolate(tt, like)

    sol = ODESolution(
        t=t,
        u=u,
        retcodes=retcodes,
        stats=SolveStats(**{k: stats[:, i] for i, k in enumerate(contract.STAT_NAMES)}),
        alg=alg,
        engine="julia",
        t_final=tfinal,
        interp=interp,
    )
    if opts.throw:
        bad = (retcodes != int(ReturnCode.Success)).nonzero()
        if bad.numel():
            i = int(bad[0, 0])
            raise SolveError(ReturnCode(int(retcodes[i])), i, float(tfinal[i]), "julia", alg.name)
    return sol


def _kept_of(u: torch.Tensor) -> KeptSolution | None:
    """The kept solution of a `JuliaSolve` output (its ctx is the grad_fn)."""
    fn = u.grad_fn
    return getattr(fn, "kept", None)
