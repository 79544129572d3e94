# Sensitivity algorithms by gnode name (`gnode_bridge.contract.SENSEALGS`), built from their specs, and
# the VJP choice.
#
# The continuous adjoints run through `adjoint_sensitivities`; "BackpropAdjoint" and
# "ForwardDiffSensitivity" differentiate through the solver with ForwardDiff (what
# SciMLSensitivity's ForwardDiffSensitivity does), which pays off for small parameter counts only.
# Options (`contract.SENSEALG_OPTIONS`): `alg`, `reltol`, `abstol` of the backward solve (absent or
# null: the forward solve's), and `checkpointing` where SciMLSensitivity has it (absent: its default).

const CONTINUOUS_ADJOINTS = (
    "BacksolveAdjoint",
    "InterpolatingAdjoint",
    "QuadratureAdjoint",
    "GaussAdjoint",
)
const FORWARD_MODE = ("BackpropAdjoint", "ForwardDiffSensitivity")

const SENSEALG_OPTIONS = Dict{String, Tuple}(
    "BackpropAdjoint" => (),
    "ForwardDiffSensitivity" => (),
    "BacksolveAdjoint" => ("alg", "reltol", "abstol", "checkpointing"),
    "InterpolatingAdjoint" => ("alg", "reltol", "abstol", "checkpointing"),
    "QuadratureAdjoint" => ("alg", "reltol", "abstol"),
    "GaussAdjoint" => ("alg", "reltol", "abstol", "checkpointing"),
)

"""
    check_sensealg(spec) -> name

The name of a sensealg spec ("" for `nothing`, a forward-only solve), refusing unknown names and options.
"""
function check_sensealg(spec)
    spec === nothing && return ""
    return check_options(spec, keys(SENSEALG_OPTIONS), SENSEALG_OPTIONS, "sensealg")
end

"""
    vjp_choice(name)

The `autojacvec` of an explicitly chosen VJP. ReverseDiff is never compiled here: the input lookup
branches on `t`, and a compiled tape would replay the branch it was recorded with.
"""
function vjp_choice(name::AbstractString)
    name == "EnzymeVJP" && return EnzymeVJP()
    name == "ReverseDiffVJP" && return ReverseDiffVJP(false)
    name == "ForwardDiff" && return false
    name == "ZygoteVJP" && return ZygoteVJP()
    throw(ArgumentError(
        "unknown vjp \"$name\"; choose auto, EnzymeVJP, ReverseDiffVJP, ForwardDiff or ZygoteVJP",
    ))
end

"""
    check_vjp(name, batched)

Zygote cannot differentiate the ensemble mode's in-place field (it writes into a workspace, and Zygote
refuses array mutation; an explicitly chosen `autojacvec` gets no fallback in `adjoint_sensitivities`).
"""
function check_vjp(name::AbstractString, batched::Bool)
    batched ||
        name != "ZygoteVJP" ||
        throw(ArgumentError(
            "vjp ZygoteVJP cannot differentiate the ensemble mode's in-place vector field " *
                "(Zygote refuses array mutation); use EnzymeVJP or auto, or the batched mode",
        ))
    return name
end

"""
    resolve_vjp(name, record, t0, batched)

The `autojacvec` for a whole backward solve, resolved once: with `autojacvec = nothing`,
`adjoint_sensitivities` would probe again on every call (once per piece per trajectory). "auto" resolves
as SciMLSensitivity's automatic choice does (`adjoint_sensitivities` in sensitivity_interface.jl,
`inplace_vjp` in concrete_solve.jl): ZygoteVJP for the out-of-place (batched) field; for the in-place
one EnzymeVJP when Enzyme differentiates it, else ReverseDiffVJP (uncompiled, see `vjp_choice`).
"""
function resolve_vjp(name::AbstractString, record, t0, batched::Bool)
    check_vjp(name, batched)
    name == "auto" || return vjp_choice(name)
    batched && return ZygoteVJP()
    return enzyme_differentiates(record.field, record.u0, record.p, t0) ?
        EnzymeVJP() :
        ReverseDiffVJP(false)
end

# The probe of SciMLSensitivity's `inplace_vjp`: one reverse pass through f!(du, u, p, t).
function enzyme_vjp_probe(f, du, u, p, t)
    f(du, u, p, t)
    return nothing
end

function enzyme_differentiates(field, u0, p, t0)
    try
        Enzyme.autodiff(
            Enzyme.Reverse,
            enzyme_vjp_probe,
            Enzyme.Duplicated(field, Enzyme.make_zero(field)),
            Enzyme.Duplicated(zero(u0), copy(u0)),
            Enzyme.Duplicated(copy(u0), zero(u0)),
            Enzyme.Duplicated(copy(p), zero(p)),
            Enzyme.Const(t0),
        )
        return true
    catch
        return false
    end
end

"""
    continuous_adjoint(spec, vjp, abstol, reltol)

The SciMLSensitivity algorithm for a gnode continuous-adjoint spec. QuadratureAdjoint's own tolerances
(those of its quadrature) are the backward solve's, which `adjoint_sensitivities` receives too.
"""
function continuous_adjoint(spec::AbstractDict, vjp, abstol, reltol)
    name = String(spec["name"])
    name == "InterpolatingAdjoint" &&
        return InterpolatingAdjoint(;
            autojacvec = vjp,
            checkpointing = Bool(option(spec, "checkpointing", false)),
        )
    name == "BacksolveAdjoint" &&
        return BacksolveAdjoint(;
            autojacvec = vjp,
            checkpointing = Bool(option(spec, "checkpointing", true)),
        )
    name == "QuadratureAdjoint" &&
        return QuadratureAdjoint(; autojacvec = vjp, abstol, reltol)
    name == "GaussAdjoint" &&
        return GaussAdjoint(;
            autojacvec = vjp,
            checkpointing = Bool(option(spec, "checkpointing", false)),
        )
    known = join((CONTINUOUS_ADJOINTS..., FORWARD_MODE...), ", ")
    throw(ArgumentError("unknown sensealg \"$name\"; the Julia engine has $known"))
end
