# The vector field of one trajectory, in place: f!(du, h, p, t) with p = [theta; input samples].
#
# Written as plain loops over the flat parameter vector: no views, no BLAS, no allocation for the
# solve's own precision. At the gnODE's sizes (n and widths of tens) the loops are as fast as BLAS
# calls, and they work unchanged on ForwardDiff duals (the Jacobians of the stiff methods, forward-
# mode sensitivities), on ReverseDiff's tracked reals and under Enzyme (the adjoints' VJPs). Why not
# Lux: its layers are out-of-place and allocate per call; the in-place field keeps the explicit
# methods allocation-free and lets SciMLSensitivity choose Enzyme for the VJPs.

"""
Hidden-layer buffers: `s0` = pre(h) (n), `ping`/`pong` (width), the outputs of F and G (n), x (d).
"""
struct Workspace{T}
    s0::Vector{T}
    ping::Vector{T}
    pong::Vector{T}
    outF::Vector{T}
    outG::Vector{T}
    x::Vector{T}
end

Workspace{T}(spec::FieldSpec) where {T} = Workspace{T}(
    zeros(T, spec.n),
    zeros(T, spec.width),
    zeros(T, spec.width),
    zeros(T, spec.n),
    zeros(T, spec.n),
    zeros(T, max(spec.d, 1)),
)

"""
    GatedField{T}

The in-place vector field for one trajectory in precision `T`, on input interval `control.segment`.
Its workspace is preallocated for `T`; other number types (duals, tracked reals) get a fresh one per
call, which only the differentiation paths pay for.
"""
struct GatedField{T, C <: ControlLayout}
    spec::FieldSpec
    control::C
    work::Workspace{T}
end

GatedField{T}(spec::FieldSpec, control::ControlLayout) where {T} = GatedField{
    T,
    typeof(control),
}(spec, control, Workspace{T}(spec))

on_segment(f::GatedField{T}, k::Int) where {T} = GatedField{T, typeof(f.control)}(
    f.spec,
    with_segment(f.control, k),
    f.work,
)

workspace(f::GatedField{T}, ::Type{T}) where {T} = f.work
workspace(f::GatedField, ::Type{S}) where {S} = Workspace{S}(f.spec)

function (f::GatedField{T})(du, h, p, t) where {T}
    spec = f.spec
    S = promote_type(eltype(du), eltype(h), eltype(p))
    w = workspace(f, S)
    input!(w.x, f.control, p, t)
    network!(w.outF, w, spec.F, h, p, spec.d)
    spec.gate && network!(w.outG, w, spec.G, h, p, spec.d)
    invtau = inverse_tau(spec, p, T)
    @inbounds for i in 1:(spec.n)
        r = spec.leak ? w.outF[i] - h[i] : w.outF[i]
        du[i] = (spec.gate ? w.outG[i] * r : r) * invtau
    end
    return nothing
end

"""
    network!(out, w, net, h, p, d)

`out = net(h, x)` with x in `w.x`: s0 = pre(h), then each layer `act(W s + U x + b)`, reading W, U, b
from the flat vector `p` (row-major blocks). Hidden layers alternate between `w.ping` and `w.pong`.
"""
function network!(out, w::Workspace, net::Network, h, p, d::Int)
    n = length(w.s0)
    @inbounds for i in 1:n
        w.s0[i] = activate(net.pre, h[i])
    end
    src = w.s0
    nlayers = length(net.layers)
    for (l, layer) in enumerate(net.layers)
        dst = l == nlayers ? out : (isodd(l) ? w.ping : w.pong)
        dense!(dst, layer, src, w.x, p, d)
        src = dst
    end
    return out
end

@inline function dense!(dst, layer::Layer, src, x, p, d::Int)
    W0 = first(layer.W) - 1
    U0 = first(layer.U) - 1
    b0 = first(layer.b) - 1
    has_input = !isempty(layer.U)
    @inbounds for o in 1:(layer.nout)
        acc = p[b0 + o]
        row = W0 + (o - 1) * layer.nin
        for i in 1:(layer.nin)
            acc += p[row + i] * src[i]
        end
        if has_input
            urow = U0 + (o - 1) * d
            for j in 1:d
                acc += p[urow + j] * x[j]
            end
        end
        dst[o] = activate(layer.act, acc)
    end
    return dst
end
