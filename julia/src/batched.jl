# The vector field of the whole batch at once, out of place: H (n, B) -> dH/dt (n, B).
#
# This is the form for CUDA arrays (and for the "batched" mode on the CPU): whole-array operations
# only (matrix products, broadcasts, views of p), so that it runs on GPU arrays and Zygote can take
# its vector-Jacobian products (ZygoteVJP). All trajectories share one step size here.

struct BatchedField{T, C <: ControlLayout}
    spec::FieldSpec
    control::C
    Bv::Int
end

BatchedField{T}(spec::FieldSpec, control::ControlLayout, Bv::Int) where {T} = BatchedField{
    T,
    typeof(control),
}(spec, control, Bv)

on_segment(f::BatchedField{T}, k::Int) where {T} = BatchedField{T, typeof(f.control)}(
    f.spec,
    with_segment(f.control, k),
    f.Bv,
)

function (f::BatchedField{T})(H, p, t) where {T}
    spec = f.spec
    x = spec.d > 0 ? input_array(f.control, p, t, f.Bv) : nothing
    drive = network_array(spec.F, H, x, p, spec.d)
    spec.leak && (drive = drive .- H)
    spec.gate && (drive = network_array(spec.G, H, x, p, spec.d) .* drive)
    if spec.log_tau > 0
        return drive .* exp.(.-view(p, (spec.log_tau):(spec.log_tau)))
    end
    return drive .* T(inv(spec.tau))
end

"""
    network_array(net, H, x, p, d)

The network on the columns of `H` (n, B) with inputs `x` (d, Bv) or `nothing`. A row-major (out, in)
block of p read as a column-major (in, out) matrix is W', hence the `transpose`.
"""
function network_array(net::Network, H, x, p, d::Int)
    s = activate_array(net.pre, H)
    for layer in net.layers
        Wt = reshape(view(p, layer.W), layer.nin, layer.nout)
        a = transpose(Wt) * s .+ view(p, layer.b)
        if !isempty(layer.U) && x !== nothing
            Ut = reshape(view(p, layer.U), d, layer.nout)
            a = a .+ transpose(Ut) * x
        end
        s = activate_array(layer.act, a)
    end
    return s
end
