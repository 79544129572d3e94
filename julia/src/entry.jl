# The entry points the Python bridge calls (`bridge/gnode_bridge/contract.py` is their reference:
# argument order, array layouts, codes). Arrays arrive with their dimensions reversed relative to
# torch: u0 is (n, B), input values (d, Ti, Bv), outputs (n, S, B). Outputs are written into the
# caller's buffers; nothing Julia-owned is returned.

const API_VERSION = 1

api_version() = API_VERSION

"""
A kept solve: its setup, one record per trajectory (ensemble) or one for the batch (batched).
"""
struct Kept
    setup::SolveSetup
    records::Vector{Record}
    batched::Bool
    Bv::Int
end

const KEPT = Dict{Int, Kept}()
const NEXT_HANDLE = Ref(0)

host_vector(::Type{T}, x) where {T} = x === nothing ? T[] : T[v for v in x]
owned(::Type{T}, x::Array) where {T} = Array{T}(x)
owned(::Type{T}, x) where {T} = x isa DenseArray ? copy(x) : Array{T}(x)
optional(x) = x === nothing ? nothing : Float64(x)

"""
    solve_forward!(u_out, tfinal_out, retcode_out, stats_out, spec_json, theta, u0, t0, t1, saveat,
                   input_times, input_values, interpolation, alg, sensealg, vjp, checkpointing,
                   adjoint_alg, adjoint_reltol, adjoint_abstol, reltol, abstol, dt, dtmin, dtmax,
                   maxiters, tstops, keep, mode) -> handle

Solve, write the saved values, stopping times, return codes and counters, and keep the solution under
the returned handle when `keep` (0 otherwise).
"""
function solve_forward!(
    u_out,
    tfinal_out,
    retcode_out,
    stats_out,
    spec_json,
    theta,
    u0,
    t0,
    t1,
    saveat,
    input_times,
    input_values,
    interpolation,
    alg,
    sensealg,
    vjp,
    checkpointing,
    adjoint_alg,
    adjoint_reltol,
    adjoint_abstol,
    reltol,
    abstol,
    dt,
    dtmin,
    dtmax,
    maxiters,
    tstops,
    keep,
    mode,
)
    T = eltype(u0)
    spec = parse_spec(String(spec_json))
    length(theta) == spec.nparams ||
        throw(DimensionMismatch(
            "theta has $(length(theta)) entries but the spec lays out $(spec.nparams)",
        ))
    n, B = size(u0, 1), size(u0, 2)
    n == spec.n || throw(DimensionMismatch("u0 has n = $n but the spec has n = $(spec.n)"))
    algorithm(String(alg))
    check_sensealg(String(sensealg))
    times = host_vector(T, input_times)
    sv = host_vector(T, saveat)
    interp_code = get(INTERPOLATION_CODES, String(interpolation), ZOH)
    setup = SolveSetup{T}(
        spec,
        spec.nparams,
        T(t0),
        T(t1),
        sv,
        times,
        pieces(T(t0), T(t1), sv, times, host_vector(T, tstops), interp_code),
        String(alg),
        Float64(reltol),
        Float64(abstol),
        optional(dt),
        optional(dtmin),
        optional(dtmax),
        Int(maxiters),
        String(sensealg),
        String(vjp),
        Bool(checkpointing),
        String(adjoint_alg),
        Float64(adjoint_reltol),
        Float64(adjoint_abstol),
    )
    values = input_values === nothing ? nothing : owned(T, input_values)
    code = get(INTERPOLATION_CODES, String(interpolation), -1)
    code >= 0 || throw(ArgumentError("unknown interpolation \"$interpolation\""))
    if values !== nothing && spec.d > 0 && size(values, 1) != spec.d
        throw(DimensionMismatch(
            "input values have d = $(size(values, 1)) but the spec has d_in = $(spec.d)",
        ))
    end
    ctrl = ControlLayout{T}(times, code, values === nothing ? 0 : spec.d, spec.nparams, 1)
    Bv = values === nothing ? 1 : size(values, 3)
    theta_owned = owned(T, theta)
    records = Record[]
    batched = String(mode) == "batched"
    if batched
        p = values === nothing ? theta_owned : vcat(theta_owned, vec(values))
        field = BatchedField{T}(spec, ctrl, Bv)
        U0 = owned(T, u0)
        chain = solve_chain(setup, field, U0, p; dense = Bool(keep))
        u_out .= chain.saved
        fill!(tfinal_out, chain.tfinal)
        fill!(retcode_out, chain.retcode)
        stats_out .= chain.stats
        push!(records, Record(U0, p, field, chain))
    else
        String(mode) == "ensemble" ||
            throw(ArgumentError("unknown mode \"$mode\"; use ensemble or batched"))
        field = GatedField{T}(spec, ctrl)
        for b in 1:B
            p = values === nothing ?
                copy(theta_owned) :
                vcat(theta_owned, vec(view(values, :, :, Bv == 1 ? 1 : b)))
            ub = Vector{T}(u0[:, b])
            chain = solve_chain(setup, field, ub, p; dense = Bool(keep))
            view(u_out, :, :, b) .= chain.saved
            tfinal_out[b] = chain.tfinal
            retcode_out[b] = chain.retcode
            view(stats_out, :, b) .= chain.stats
            push!(records, Record(ub, p, field, chain))
        end
    end
    Bool(keep) || return 0
    NEXT_HANDLE[] += 1
    KEPT[NEXT_HANDLE[]] = Kept(setup, records, batched, Bv)
    return NEXT_HANDLE[]
end

function kept(handle)
    h = Int(handle)
    haskey(KEPT, h) || throw(ArgumentError("no kept solution $h (released, or never kept)"))
    return KEPT[h]
end

"""
    solve_backward!(dtheta_out, du0_out, dvalues_out, handle, cotangent)

Gradients of `sum(cotangent .* u)` with respect to theta, u0 and the input values (if any).
"""
function solve_backward!(dtheta_out, du0_out, dvalues_out, handle, cotangent)
    k = kept(handle)
    setup = k.setup
    P = setup.nparams
    T = eltype(k.records[1].p)
    forward_mode = setup.sensealg in FORWARD_MODE
    fill!(dtheta_out, zero(eltype(dtheta_out)))
    dvalues_out === nothing || fill!(dvalues_out, zero(eltype(dvalues_out)))
    if k.batched
        record = k.records[1]
        check_differentiable(record, "the batch")
        cot = owned(T, cotangent)
        du0, dp = forward_mode ?
            forward_mode_chain(setup, record, cot) :
            adjoint_chain(setup, record, cot)
        dtheta_out .= view(dp, 1:P)
        du0_out .= du0
        dvalues_out === nothing || (vec(dvalues_out) .= view(dp, (P + 1):length(dp)))
        return nothing
    end
    for (b, record) in enumerate(k.records)
        check_differentiable(record, "trajectory $(b - 1)")
        cot = Matrix{T}(cotangent[:, :, b])
        du0, dp = forward_mode ?
            forward_mode_chain(setup, record, cot) :
            adjoint_chain(setup, record, cot)
        dtheta_out .+= view(dp, 1:P)
        view(du0_out, :, b) .= du0
        if dvalues_out !== nothing
            d, Ti = size(dvalues_out, 1), size(dvalues_out, 2)
            view(dvalues_out, :, :, k.Bv == 1 ? 1 : b) .+= reshape(
                view(dp, (P + 1):length(dp)),
                d,
                Ti,
            )
        end
    end
    return nothing
end

"""
    interpolate!(out, handle, times)

The dense output of a kept solution at `times`: out (n, K, B).
"""
function interpolate!(out, handle, times)
    k = kept(handle)
    T = eltype(k.records[1].p)
    ts = host_vector(T, times)
    if k.batched
        buffer = similar(k.records[1].u0, T, size(out)...)
        interpolate_chain!(buffer, k.setup, k.records[1].chain.sols, ts)
        out .= buffer
        return nothing
    end
    for (b, record) in enumerate(k.records)
        buffer = Matrix{T}(undef, size(out, 1), length(ts))
        interpolate_chain!(buffer, k.setup, record.chain.sols, ts)
        view(out, :, :, b) .= buffer
    end
    return nothing
end

"""
    release(handle)

Forget a kept solution (idempotent).
"""
function release(handle)
    delete!(KEPT, Int(handle))
    return nothing
end
