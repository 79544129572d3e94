# The forward solve: a chain of sub-solves (segments.jl) for one trajectory (ensemble mode, in-place
# field, state a vector) or for the whole batch (batched mode, out-of-place field, state an (n, B)
# matrix). Written for any number type, so ForwardDiff can run it with duals.

"""
Everything about one request that does not change between trajectories, with the algorithms built.
"""
struct SolveSetup{T}
    spec::FieldSpec
    nparams::Int
    t0::T
    t1::T
    saveat::Vector{T}
    input_times::Vector{T}
    pieces::Vector{Piece{T}}
    alg::Any
    reltol::Float64
    abstol::Float64
    dt::Union{Nothing, Float64}
    dtmin::Union{Nothing, Float64}
    dtmax::Union{Nothing, Float64}
    maxiters::Int
    sensealg::Union{Nothing, AbstractDict}
    vjp::String
    adjoint_alg::Any
    adjoint_reltol::Float64
    adjoint_abstol::Float64
end

"""
    solve_setup(T, request, spec, interp) -> SolveSetup{T}

The setup of a request in precision `T`: the pieces of the span, the algorithm built from its spec, and
the backward solve's method and tolerances (the sensealg's `alg`, `reltol`, `abstol`, else the forward
solve's).
"""
function solve_setup(::Type{T}, request::Request, spec::FieldSpec, interp::Int) where {T}
    saveat = T.(request.saveat)
    times = T.(request.input_times)
    t0, t1 = T(request.t0), T(request.t1)
    alg = algorithm(request.alg)
    sense = request.sensealg
    nested = sense === nothing ? nothing : option(sense, "alg", nothing)
    return SolveSetup{T}(
        spec,
        spec.nparams,
        t0,
        t1,
        saveat,
        times,
        pieces(t0, t1, saveat, times, T.(request.tstops), interp),
        alg,
        request.reltol,
        request.abstol,
        request.dt,
        request.dtmin,
        request.dtmax,
        request.maxiters,
        sense,
        request.vjp,
        nested === nothing ? alg : algorithm(nested),
        adjoint_tolerance(sense, "reltol", request.reltol),
        adjoint_tolerance(sense, "abstol", request.abstol),
    )
end

function adjoint_tolerance(sense, name::AbstractString, forward::Float64)
    sense === nothing && return forward
    value = option(sense, name, nothing)
    return value === nothing ? forward : Float64(value)
end

"""
The result of one chain: values at `saveat` (NaN after a failure), the kept sub-solutions (`dense`
only), the gnode return code, where it stopped and the summed counters.
"""
struct ChainResult{A}
    saved::A
    sols::Vector{Any}
    retcode::Int
    tfinal::Float64
    stats::Vector{Int}
end

"""
    solver_options(setup, piece, used)

Keyword arguments of one sub-solve; `used` steps of the `maxiters` budget are already spent.
"""
function solver_options(setup::SolveSetup, piece::Piece, used::Int)
    kw = Dict{Symbol, Any}(
        :reltol => setup.reltol,
        :abstol => setup.abstol,
        :maxiters => max(setup.maxiters - used, 1),
        :tstops => piece.tstops,
    )
    setup.dt === nothing || (kw[:dt] = setup.dt)
    setup.dtmin === nothing || (kw[:dtmin] = setup.dtmin)
    setup.dtmax === nothing || (kw[:dtmax] = setup.dtmax)
    return kw
end

problem_for(f::GatedField, u, span, p) = ODEProblem{true}(ODEFunction{true}(f), u, span, p)
problem_for(f::BatchedField, u, span, p) = ODEProblem{false}(
    ODEFunction{false}(f),
    u,
    span,
    p,
)

"""
    solve_chain(setup, field, u0, p; dense) -> ChainResult

Solve piece after piece from `u0` with parameters `p`. With `dense`, every step is kept (and the
sub-solutions returned) so that the saved values come from the dense output and the adjoints can run;
otherwise each piece saves only at its `saveat` times and its end.
"""
function solve_chain(
    setup::SolveSetup,
    field,
    u0::AbstractArray,
    p::AbstractVector;
    dense::Bool,
)
    S = promote_type(eltype(u0), eltype(p))
    nsave = length(setup.saveat)
    saved = similar(u0, S, size(u0, 1), nsave, size(u0)[2:end]...)
    fill!(saved, S(NaN))
    stats = zeros(Int, length(STAT_NAMES))
    alg = setup.alg
    ad = S <: ForwardDiff.Dual ? (; sensealg = SensitivityADPassThrough()) : (;)
    u = u0
    sols = Any[]
    retcode = RETCODES["Success"]
    tfinal = Float64(setup.t1)
    for piece in setup.pieces
        prob = problem_for(on_segment(field, piece.segment), u, (piece.a, piece.b), p)
        kw = solver_options(setup, piece, stats[2] + stats[3])
        if dense
            sol = solve(prob, alg; kw..., ad..., save_everystep = true, dense = true)
        else
            sv = setup.saveat[piece.save]
            sol = solve(
                prob,
                alg;
                kw...,
                ad...,
                saveat = sv,
                save_everystep = false,
                save_start = any(==(piece.a), sv),
                save_end = true,
            )
        end
        add_stats!(stats, sol)
        store_saved!(saved, setup, piece, sol, dense)
        dense && push!(sols, sol)
        if !SciMLBase.successful_retcode(sol)
            retcode = gnode_retcode(sol.retcode)
            tfinal = Float64(sol.t[end])
            break
        end
        u = sol.u[end]
    end
    return ChainResult(saved, sols, retcode, tfinal, stats)
end

"""
    store_saved!(saved, setup, piece, sol, dense)

Copy the piece's saved values into `saved` (axis 2 indexes `saveat`): from the dense output up to
where the solve stopped, or by matching the saved times (they are the `saveat` values exactly).
"""
function store_saved!(saved, setup::SolveSetup, piece::Piece, sol, dense::Bool)
    isempty(piece.save) && return saved
    dir = setup.t1 > setup.t0 ? 1 : -1
    reached = sol.t[end]
    if dense
        for i in piece.save
            s = setup.saveat[i]
            dir * (s - reached) <= 0 || break
            selectdim(saved, 2, i) .= sol(s)
        end
        return saved
    end
    j = 1
    for i in piece.save
        s = setup.saveat[i]
        while j <= length(sol.t) && dir * (sol.t[j] - s) < 0
            j += 1
        end
        j <= length(sol.t) && sol.t[j] == s || break
        selectdim(saved, 2, i) .= sol.u[j]
    end
    return saved
end

"""
    interpolate_chain!(out, setup, sols, times)

The dense output of a kept chain at `times` into `out` (axis 2 indexes `times`), NaN where the
chain did not reach.
"""
function interpolate_chain!(out, setup::SolveSetup, sols, times::AbstractVector)
    dir = setup.t1 > setup.t0 ? 1 : -1
    for (i, s) in enumerate(times)
        j = findfirst(piece -> dir * (s - piece.b) <= 0, setup.pieces)
        j === nothing && (j = length(setup.pieces))
        if j > length(sols) || dir * (s - sols[j].t[end]) > 0
            selectdim(out, 2, i) .= NaN
        else
            selectdim(out, 2, i) .= sols[j](s)
        end
    end
    return out
end
