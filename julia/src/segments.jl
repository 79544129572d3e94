# One solve is a chain of sub-solves split at the input's sample times.
#
# Within a piece the input is smooth (a hold, a line or one cubic), so the methods keep their order;
# at each sample time the chain restarts, which also gives a zero-order hold its jump exactly there,
# with the left limit seen by the step that ends on it (the torch engine's semantics). Saved times
# belong to the first piece whose closed interval holds them; user `tstops` go to the piece that holds
# them inside.

struct Piece{T}
    a::T
    b::T
    segment::Int
    save::UnitRange{Int}
    tstops::Vector{T}
end

"""
    pieces(t0, t1, saveat, input_times, tstops, interp) -> Vector{Piece}

Split the span at the input sample times strictly inside it, in the direction of integration.
"""
function pieces(
    t0::T,
    t1::T,
    saveat::Vector{T},
    input_times::Vector{T},
    tstops::Vector{T},
    interp::Int,
) where {T}
    dir = t1 > t0 ? one(T) : -one(T)
    inside = [s for s in input_times if dir * (s - t0) > 0 && dir * (t1 - s) > 0]
    sort!(inside; rev = dir < 0)
    bounds = [t0; inside; t1]
    backward = dir < 0
    out = Piece{T}[]
    next = 1
    for j in 1:(length(bounds) - 1)
        a, b = bounds[j], bounds[j + 1]
        last_piece = j == length(bounds) - 1
        stop = next - 1
        while stop < length(saveat) && (last_piece || dir * (saveat[stop + 1] - b) <= 0)
            stop += 1
        end
        k = isempty(input_times) ? 1 : segment_of(input_times, a, backward, interp)
        stops = T[s for s in tstops if dir * (s - a) > 0 && dir * (b - s) > 0]
        push!(out, Piece{T}(a, b, k, next:stop, stops))
        next = stop + 1
    end
    return out
end
