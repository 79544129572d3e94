# Sensitivity algorithms by gnode name (`gnode_bridge.contract.SENSEALGS`) and the VJP choice.
#
# The continuous adjoints run through `adjoint_sensitivities`; "BackpropAdjoint" and
# "ForwardDiffSensitivity" differentiate through the solver with ForwardDiff (what
# SciMLSensitivity's ForwardDiffSensitivity does), which pays off for small parameter counts only.

const CONTINUOUS_ADJOINTS = (
    "BacksolveAdjoint",
    "InterpolatingAdjoint",
    "QuadratureAdjoint",
    "GaussAdjoint",
)
const FORWARD_MODE = ("BackpropAdjoint", "ForwardDiffSensitivity")

"""
    vjp_choice(name)

The `autojacvec` of a continuous adjoint: `nothing` lets SciMLSensitivity choose (it tries Enzyme,
then ReverseDiff, compiling the tape only when the field has no value-dependent branch). ReverseDiff
is never compiled here: the input lookup branches on `t`, and a compiled tape would replay the
branch it was recorded with.
"""
function vjp_choice(name::AbstractString)
    name == "auto" && return nothing
    name == "EnzymeVJP" && return EnzymeVJP()
    name == "ReverseDiffVJP" && return ReverseDiffVJP(false)
    name == "ForwardDiff" && return false
    name == "ZygoteVJP" && return ZygoteVJP()
    throw(ArgumentError(
        "unknown vjp \"$name\"; choose auto, EnzymeVJP, ReverseDiffVJP, ForwardDiff or ZygoteVJP",
    ))
end

"""
    continuous_adjoint(name, vjp, checkpointing, abstol, reltol)

The SciMLSensitivity algorithm for a gnode continuous-adjoint name.
"""
function continuous_adjoint(name::AbstractString, vjp, checkpointing::Bool, abstol, reltol)
    name == "InterpolatingAdjoint" &&
        return InterpolatingAdjoint(; autojacvec = vjp, checkpointing)
    name == "BacksolveAdjoint" && return BacksolveAdjoint(; autojacvec = vjp)
    name == "QuadratureAdjoint" &&
        return QuadratureAdjoint(; autojacvec = vjp, abstol, reltol)
    name == "GaussAdjoint" && return GaussAdjoint(; autojacvec = vjp, checkpointing)
    known = join((CONTINUOUS_ADJOINTS..., FORWARD_MODE...), ", ")
    throw(ArgumentError("unknown sensealg \"$name\"; the Julia engine has $known"))
end

function check_sensealg(name::AbstractString)
    isempty(name) ||
        name in CONTINUOUS_ADJOINTS ||
        name in FORWARD_MODE ||
        throw(ArgumentError(
            "unknown sensealg \"$name\"; the Julia engine has " *
                join((CONTINUOUS_ADJOINTS..., FORWARD_MODE...), ", "),
        ))
    return name
end
