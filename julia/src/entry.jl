# The entry points the Python bridge calls (`bridge/gnode_bridge/contract.py` is their reference:
# argument order, array layouts, codes). Arrays arrive with their dimensions reversed relative to
# torch: u0 is (n, B), input values (d, Ti, Bv), outputs (n, S, B). Outputs are written into the
# caller's buffers; nothing Julia-owned is returned.

const API_VERSION = 2

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

owned(::Type{T}, x::Array) where {T} = Array{T}(x)
owned(::Type{T}, x) where {T} = x isa DenseArray ? copy(x) : Array{T}(x)

"""
    solve_forward!(u_out, tfinal_out, retcode_out, stats_out, theta, u0, input_values, request) -> handle

Solve as the options record `request` (JSON, `request.jl`) asks, write the saved values, stopping times,
return codes and counters, and keep the solution under the returned handle when `request.keep` (0
otherwise).
"""
function solve_forward!(
    u_out,
    tfinal_out,
    retcode_out,
    stats_out,
    theta,
    u0,
    input_values,
    request,
)
    T = eltype(u0)
    req = parse_request(String(request))
    spec = parse_spec(req.model)
    length(theta) == spec.nparams ||
        throw(DimensionMismatch(
            "theta has $(length(theta)) entries but the spec lays out $(spec.nparams)",
        ))
    n, B = size(u0, 1), size(u0, 2)
    n == spec.n || throw(DimensionMismatch("u0 has n = $n but the spec has n = $(spec.n)"))
    sense_name = check_sensealg(req.sensealg)
    batched = req.mode == "batched"
    batched ||
        req.mode == "ensemble" ||
        throw(ArgumentError("unknown mode \"$(req.mode)\"; use ensemble or batched"))
    sense_name in CONTINUOUS_ADJOINTS && check_vjp(req.vjp, batched)
    code = get(INTERPOLATION_CODES, req.interpolation, -1)
    code >= 0 || throw(ArgumentError("unknown interpolation \"$(req.interpolation)\""))
    setup = solve_setup(T, req, spec, code)
    values = input_values === nothing ? nothing : owned(T, input_values)
    if values !== nothing && spec.d > 0 && size(values, 1) != spec.d
        throw(DimensionMismatch(
            "input values have d = $(size(values, 1)) but the spec has d_in = $(spec.d)",
        ))
    end
    ctrl = ControlLayout{T}(
        setup.input_times,
        code,
        values === nothing ? 0 : spec.d,
        spec.nparams,
        1,
    )
    Bv = values === nothing ? 1 : size(values, 3)
    theta_owned = owned(T, theta)
    records = Record[]
    if batched
        p = values === nothing ? theta_owned : vcat(theta_owned, vec(values))
        field = BatchedField{T}(spec, ctrl, Bv)
        U0 = owned(T, u0)
        chain = solve_chain(setup, field, U0, p; dense = req.keep)
        u_out .= chain.saved
        fill!(tfinal_out, chain.tfinal)
        fill!(retcode_out, chain.retcode)
        stats_out .= chain.stats
        push!(records, Record(U0, p, field, chain))
    else
        field = GatedField{T}(spec, ctrl)
        for b in 1:B
            p = values === nothing ?
                copy(theta_owned) :
                vcat(theta_owned, vec(view(values, :, :, Bv == 1 ? 1 : b)))
            ub = Vector{T}(u0[:, b])
            chain = solve_chain(setup, field, ub, p; dense = req.keep)
            view(u_out, :, :, b) .= chain.saved
            tfinal_out[b] = chain.tfinal
            retcode_out[b] = chain.retcode
            view(stats_out, :, b) .= chain.stats
            push!(records, Record(ub, p, field, chain))
        end
    end
    req.keep || return 0
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
    setup.sensealg === nothing &&
        throw(ArgumentError(
            "the kept solution was solved without a sensealg: nothing to differentiate",
        ))
    forward_mode = setup.sensealg["name"] in FORWARD_MODE
    # the SciMLSensitivity method, with its VJP resolved once for the whole backward solve
    sensealg = forward_mode ?
        nothing :
        continuous_adjoint(
            setup.sensealg,
            resolve_vjp(setup.vjp, k.records[1], setup.t0, k.batched),
            setup.adjoint_abstol,
            setup.adjoint_reltol,
        )
    fill!(dtheta_out, zero(eltype(dtheta_out)))
    dvalues_out === nothing || fill!(dvalues_out, zero(eltype(dvalues_out)))
    if k.batched
        record = k.records[1]
        check_differentiable(record, "the batch")
        cot = owned(T, cotangent)
        du0, dp = forward_mode ?
            forward_mode_chain(setup, record, cot) :
            adjoint_chain(setup, record, cot, sensealg)
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
            adjoint_chain(setup, record, cot, sensealg)
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
    ts = T[t for t in times]
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
