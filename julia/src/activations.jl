# The pointwise nonlinearities of the spec (`gnode.models.activations`), by name.
#
#     identity  a          tanh  tanh(a)          relu  max(a, 0)          sigmoid  1 / (1 + exp(-a))
#
# They are stored as small integer codes so that the vector field branches on the architecture only,
# never on a value: that keeps it differentiable by ForwardDiff, ReverseDiff and Enzyme alike.

const IDENTITY = 0
const TANH = 1
const RELU = 2
const SIGMOID = 3

const ACTIVATION_CODES = Dict(
    "identity" => IDENTITY,
    "tanh" => TANH,
    "relu" => RELU,
    "sigmoid" => SIGMOID,
)

function activation_code(name::AbstractString, where::AbstractString)
    haskey(ACTIVATION_CODES, name) && return ACTIVATION_CODES[name]
    known = join(sort!(collect(keys(ACTIVATION_CODES))), ", ")
    throw(ArgumentError("$where: unknown activation \"$name\"; known: $known"))
end

sigmoid(a) = inv(one(a) + exp(-a))

"""
    activate(code, a)

The activation `code` applied to the number `a` (relu as `max(a, 0)`, whose derivative at 0 is 0, as
in torch).
"""
@inline function activate(code::Int, a)
    code == IDENTITY && return a
    code == TANH && return tanh(a)
    code == RELU && return max(a, zero(a))
    return sigmoid(a)
end

"""
    activate_array(code, a)

The activation applied elementwise to an array, written with whole-array broadcasts so that Zygote and
GPU arrays handle it (the batched, out-of-place vector field uses it).
"""
function activate_array(code::Int, a::AbstractArray)
    code == IDENTITY && return a
    code == TANH && return tanh.(a)
    code == RELU && return max.(a, zero(eltype(a)))
    return inv.(one(eltype(a)) .+ exp.(.-a))
end
