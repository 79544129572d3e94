# The architecture spec of a gnODE-family vector field, parsed once per solve (format
# "gnode.vector_field", version 1; `gnode.models.spec` is the reference):
#
#     r = F(h, x) - h  (leak)  or  F(h, x);     f = G(h, x) .* r  (gate)  or  r;     dh/dt = f / tau
#     network: s0 = pre(h);  s_{l+1} = act_l(W_l s_l + U_l x + b_l)
#
# Parameters are read straight from the flat vector: W_l (out, in) is stored row-major, so W[i, j]
# sits at offset (i - 1) * in + j of its block.

"""
A dense layer's place in the flat parameter vector: `W` (nout, nin) row-major, `U` (nout, d)
row-major or empty, `b` (nout,).
"""
struct Layer
    nin::Int
    nout::Int
    act::Int
    W::UnitRange{Int}
    U::UnitRange{Int}
    b::UnitRange{Int}
end

struct Network
    pre::Int
    layers::Vector{Layer}
end

"""
    FieldSpec

The parsed spec: sizes, flags, the two networks and where `tau` comes from (`log_tau` indexes the flat
vector when tau is learnt, else it is 0 and `tau` holds the value). `width` is the widest layer, the
size of the hidden-layer buffers.
"""
struct FieldSpec
    n::Int
    d::Int
    leak::Bool
    gate::Bool
    F::Network
    G::Network
    tau::Float64
    log_tau::Int
    nparams::Int
    width::Int
end

const SPEC_FORMAT = "gnode.vector_field"
const SPEC_VERSION = 1

"""
    parse_spec(spec::AbstractDict) -> FieldSpec

Read `model.spec()` (parsed from the request's JSON); errors name the key at fault.
"""
function parse_spec(spec::AbstractDict)
    format = get(spec, "format", nothing)
    format == SPEC_FORMAT ||
        throw(ArgumentError(
            "the Julia engine solves vector fields (spec format \"$SPEC_FORMAT\"), got \"$format\"",
        ))
    version = get(spec, "version", nothing)
    version == SPEC_VERSION ||
        throw(ArgumentError(
            "spec version $version; this engine reads version $SPEC_VERSION",
        ))
    layout = parameter_layout(spec["parameters"])
    n = Int(spec["n"])
    d = Int(spec["d_in"])
    gate = Bool(spec["gate"])
    F = parse_network(spec["F"], "F", n, d, layout)
    G = gate ? parse_network(spec["G"], "G", n, d, layout) : Network(IDENTITY, Layer[])
    learn_tau = Bool(spec["learn_tau"])
    log_tau = learn_tau ? first(block(layout, "log_tau", Int[])) : 0
    nparams = isempty(layout) ? 0 : maximum(last(r) for (r, _) in values(layout))
    widths = [l.nout for net in (F, G) for l in net.layers]
    return FieldSpec(
        n,
        d,
        Bool(spec["leak"]),
        gate,
        F,
        G,
        Float64(spec["tau"]),
        log_tau,
        nparams,
        max(n, maximum(widths)),
    )
end

"""
    parameter_layout(entries) -> Dict(name => (range, shape))

Offsets of the tensors listed in the spec's "parameters", in order, each flattened row-major.
"""
function parameter_layout(entries)
    layout = Dict{String, Tuple{UnitRange{Int}, Vector{Int}}}()
    offset = 0
    for entry in entries
        name = String(entry[1])
        shape = Int[Int(s) for s in entry[2]]
        len = prod(shape; init = 1)
        layout[name] = (offset .+ (1:len), shape)
        offset += len
    end
    return layout
end

function block(layout, name::AbstractString, shape::Vector{Int})
    haskey(layout, name) || throw(ArgumentError("spec: the flat vector has no \"$name\""))
    range, have = layout[name]
    have == shape ||
        throw(ArgumentError(
            "spec: \"$name\" has shape $have but the architecture needs $shape",
        ))
    return range
end

function parse_network(net, name::AbstractString, n::Int, d::Int, layout)
    net === nothing && throw(ArgumentError("spec: network $name is null"))
    pre = activation_code(String(net["pre_activation"]), "$name.pre_activation")
    layers = Layer[]
    for (l, layer) in enumerate(net["layers"])
        prefix = "$name.layers.$(l - 1)"
        nin = Int(layer["in"])
        nout = Int(layer["out"])
        act = activation_code(String(layer["activation"]), "$prefix.activation")
        W = block(layout, "$prefix.weight", [nout, nin])
        U = Bool(layer["takes_input"]) && d > 0 ?
            block(layout, "$prefix.input_weight", [nout, d]) :
            (1:0)
        b = block(layout, "$prefix.bias", [nout])
        push!(layers, Layer(nin, nout, act, W, U, b))
    end
    isempty(layers) && throw(ArgumentError("spec: network $name has no layers"))
    first(layers).nin == n && last(layers).nout == n ||
        throw(ArgumentError("spec: network $name must map n = $n to n = $n"))
    return Network(pre, layers)
end

"""
    inverse_tau(spec, p, T)

1 / tau as a number of the solve's precision `T`: `exp(-log_tau)` from the flat vector when tau is
learnt, else the spec's constant.
"""
@inline inverse_tau(spec::FieldSpec, p, ::Type{T}) where {T} = spec.log_tau > 0 ?
    exp(-p[spec.log_tau]) :
    T(inv(spec.tau))
