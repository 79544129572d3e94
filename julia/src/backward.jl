# Gradients of a kept chain: the output cotangent (dL/du at the saved times) in, dL/du0 and dL/dp out.
#
# Continuous adjoints run piece by piece from the last: each piece's `adjoint_sensitivities` gets the
# cotangents of its saved times plus, at its end, the adjoint state handed back by the piece after it
# (dL/du at the start of that piece), and returns the adjoint state at its own start. Parameter
# gradients add up over the pieces. Forward mode differentiates the whole chain with ForwardDiff.

"""
One trajectory's (or, batched, the batch's) kept forward solve.
"""
struct Record{U, P}
    u0::U
    p::P
    field::Any
    chain::ChainResult
end

"""
    adjoint_chain(setup, record, cot, sensealg) -> (du0, dp)

`cot` holds dL/du at the saved times along axis 2 (the layout of `record.chain.saved`); `sensealg` is
the SciMLSensitivity method, built once per backward solve (`solve_backward!`).
"""
function adjoint_chain(setup::SolveSetup, record::Record, cot, sensealg)
    chain = record.chain
    alg = setup.adjoint_alg
    fixed = setup.dt !== nothing && !SciMLBase.isadaptive(alg) ? (; dt = setup.dt) : (;)
    dp = zero(record.p)
    lambda = zero(record.u0)
    for j in reverse(eachindex(chain.sols))
        piece = setup.pieces[j]
        handoff = j < length(chain.sols) ? lambda : nothing
        times, G = piece_cotangent(setup, piece, cot, handoff)
        if isempty(times)
            lambda = zero(record.u0)
            continue
        end
        du0_j, dp_j = adjoint_sensitivities(
            chain.sols[j],
            alg;
            t = times,
            dgdu_discrete = discrete_cotangent(G),
            sensealg,
            abstol = setup.adjoint_abstol,
            reltol = setup.adjoint_reltol,
            fixed...,
        )
        lambda = reshape(du0_j, size(record.u0))
        dp_j === nothing || (dp .+= vec(dp_j))
    end
    return lambda, dp
end

"""
    piece_cotangent(setup, piece, cot, handoff) -> (times, G)

The piece's saved times and their cotangents as the columns of `G` (length(u) × times), with the adjoint
state `handoff` of the next piece added at the piece's end (a saved time there, or one more column).
Each column is a whole state flattened: for the batched (n, B) state that is one contiguous column of an
(n·B, S) matrix, so that reading it on a GPU is a plain copy, not a strided view.
"""
function piece_cotangent(setup::SolveSetup, piece::Piece, cot, handoff)
    times = setup.saveat[piece.save]
    G = state_columns(cot, piece.save)
    handoff === nothing && return times, G
    if !isempty(times) && last(times) == piece.b
        view(G, :, size(G, 2)) .+= vec(handoff)
        return times, G
    end
    return [times; piece.b], hcat(G, vec(handoff))
end

"""
    state_columns(cot, range) -> G

The cotangents of the saved times in `range` as columns: `cot[:, range]` for one trajectory (n, S), and
for a batch (n, S, B) the (n·B, length(range)) matrix whose column i is vec of the (n, B) slice i.
"""
state_columns(cot::AbstractMatrix, range::UnitRange{Int}) = cot[:, range]

function state_columns(cot::AbstractArray{<:Any, 3}, range::UnitRange{Int})
    n, _, B = size(cot)
    return reshape(permutedims(cot[:, range, :], (1, 3, 2)), n * B, length(range))
end

"""
    discrete_cotangent(G)

`dgdu_discrete` for `adjoint_sensitivities`: dL/du at the i-th time is column i of `G`.
"""
function discrete_cotangent(G)
    return function (out, u, p, t, i)
        vec(out) .= view(G, :, i)
        return nothing
    end
end

"""
    forward_mode_chain(setup, record, cot) -> (du0, dp)

d/d(u0, p) of sum(cot .* saved) by ForwardDiff through the solver (the chain re-run with duals).
"""
function forward_mode_chain(setup::SolveSetup, record::Record, cot)
    n0 = length(record.u0)
    shape = size(record.u0)
    loss(theta) = sum(
        solve_chain(
            setup,
            record.field,
            reshape(theta[1:n0], shape),
            theta[(n0 + 1):end];
            dense = false,
        ).saved .*
            cot,
    )
    g = ForwardDiff.gradient(loss, vcat(vec(record.u0), record.p))
    return reshape(g[1:n0], shape), g[(n0 + 1):end]
end

function check_differentiable(record::Record, which::AbstractString)
    code = record.chain.retcode
    code == RETCODES["Success"] && return nothing
    name = first(k for (k, v) in RETCODES if v == code)
    throw(ArgumentError(
        "cannot differentiate $which: its solve ended with $name at t = $(record.chain.tfinal)",
    ))
end
