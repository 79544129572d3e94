# The options record of one solve: `gnode_bridge.contract.Request`, read from its JSON once.
#
# Its fields are the Python dataclass's, in the same order (a test in tests/test_bridge_contract.py
# checks). The algorithm and the sensitivity algorithm arrive as specs, {"name": ..., "options": {...}},
# and are built by `algorithm(spec)` and `continuous_adjoint(spec, ...)`, which refuse any option they do
# not forward.

"""
    Request

What a `solve_forward!` call asks for besides its array buffers (see `gnode_bridge.contract.Request`).
"""
struct Request
    model::AbstractDict
    t0::Float64
    t1::Float64
    saveat::Vector{Float64}
    input_times::Vector{Float64}
    interpolation::String
    alg::AbstractDict
    sensealg::Union{Nothing, AbstractDict}
    vjp::String
    reltol::Float64
    abstol::Float64
    dt::Union{Nothing, Float64}
    dtmin::Union{Nothing, Float64}
    dtmax::Union{Nothing, Float64}
    maxiters::Int
    tstops::Vector{Float64}
    keep::Bool
    mode::String
end

"""
    parse_request(json) -> Request

Read the record; a missing or unexpected field is an error that names it.
"""
function parse_request(json::AbstractString)
    data = JSON.parse(json)
    names = String.(fieldnames(Request))
    missing_fields = setdiff(names, collect(keys(data)))
    isempty(missing_fields) ||
        throw(ArgumentError("request: missing fields $(join(missing_fields, ", "))"))
    extra = setdiff(collect(keys(data)), names)
    isempty(extra) || throw(ArgumentError("request: unknown fields $(join(extra, ", "))"))
    args = map(fieldnames(Request)) do name
        request_field(fieldtype(Request, name), data[String(name)])
    end
    return Request(args...)
end

request_field(::Type{Vector{Float64}}, x) = Float64[v for v in x]
request_field(::Type{Union{Nothing, Float64}}, x) = x === nothing ? nothing : Float64(x)
request_field(::Type{T}, x) where {T} = convert(T, x)

"""
    option(spec, name, default)

The option `name` of an algorithm spec, or `default` (the SciML default) when the spec does not carry it.
"""
option(spec::AbstractDict, name::AbstractString, default) = get(
    spec["options"],
    name,
    default,
)

"""
    check_options(spec, known, options, what) -> name

Refuse a spec whose name is not in `known` or which carries an option `options[name]` does not list
(a name missing from `options` takes none).
"""
function check_options(
    spec::AbstractDict,
    known,
    options::AbstractDict,
    what::AbstractString,
)
    name = String(spec["name"])
    name in known ||
        throw(ArgumentError(
            "unknown $what \"$name\"; the Julia engine has $(join(sort!(collect(known)), ", "))",
        ))
    for key in keys(spec["options"])
        key in get(options, name, ()) ||
            throw(ArgumentError(
                "$name: the Julia engine does not take the option \"$key\"",
            ))
    end
    return name
end
