# Continuous-time inputs x(t) from samples, exactly as `gnode.Control` evaluates them (problem.py).
#
# The sample values live in the parameter vector p after the model's parameters (offset `offset`),
# as a (d, Ti) block per trajectory in ensemble mode or a (d, Ti, Bv) block in batched mode, so that
# the adjoint differentiates them like any parameter. `segment` is the interval
# [times[k], times[k+1]] the current sub-solve lies in: the solve is split at the sample times
# (`segments.jl`), and within one piece x is evaluated on that one interval, so a step ending on a
# breakpoint sees the left limit there, as in the torch engine.
#
#   zoh     x = v[k]  (k = Ti is "after the last sample": right-continuous forwards, left backwards)
#   linear  x = v[k] + s (v[k+1] - v[k]),                    s = clamp((t - times[k]) / h, 0, 1)
#   cubic   Hermite on [times[k], times[k+1]] with slopes m: central differences inside,
#           one-sided at the ends (both equal to the chord when Ti = 2)

const ZOH = 0
const LINEAR = 1
const CUBIC = 2

const INTERPOLATION_CODES = Dict("zoh" => ZOH, "linear" => LINEAR, "cubic" => CUBIC)

struct ControlLayout{T}
    times::Vector{T}
    interp::Int
    d::Int
    offset::Int
    segment::Int
end

ControlLayout{T}() where {T} = ControlLayout{T}(T[], ZOH, 0, 0, 1)

with_segment(c::ControlLayout{T}, k::Int) where {T} = ControlLayout{T}(
    c.times,
    c.interp,
    c.d,
    c.offset,
    k,
)

"""
    segment_of(times, t, backward) -> k

The interval a piece of the solve starting at `t` lies in (1-based, clamped to 1:Ti-1, or to 1:Ti
for a zero-order hold, whose segment Ti is "after the last sample"): right-continuous forwards,
left-continuous backwards (`gnode.Control.segment(t, left)`).
"""
function segment_of(times::AbstractVector, t, backward::Bool, interp::Int)
    last_interval = max(length(times) - (interp == ZOH ? 0 : 1), 1)
    k = backward ? searchsortedfirst(times, t) - 1 : searchsortedlast(times, t)
    return clamp(k, 1, last_interval)
end

@inline sample(p, c::ControlLayout, j::Int, k::Int) = p[c.offset + (k - 1) * c.d + j]

@inline function hermite_slope(p, c::ControlLayout, j::Int, k::Int)
    ts = c.times
    Ti = length(ts)
    if k == 1
        return (sample(p, c, j, 2) - sample(p, c, j, 1)) / (ts[2] - ts[1])
    elseif k == Ti
        return (sample(p, c, j, Ti) - sample(p, c, j, Ti - 1)) / (ts[Ti] - ts[Ti - 1])
    end
    return (sample(p, c, j, k + 1) - sample(p, c, j, k - 1)) / (ts[k + 1] - ts[k - 1])
end

"""
    input!(x, c, p, t)

Write x(t) (length d) for one trajectory whose samples are the (d, Ti) block of `p` at `c.offset`.
"""
function input!(x, c::ControlLayout, p, t)
    c.d == 0 && return x
    ts = c.times
    if length(ts) == 1
        for j in 1:c.d
            x[j] = sample(p, c, j, 1)
        end
        return x
    end
    k = c.segment
    if c.interp == ZOH
        for j in 1:c.d
            x[j] = sample(p, c, j, k)
        end
        return x
    end
    t0, t1 = ts[k], ts[k + 1]
    h = t1 - t0
    s = clamp((t - t0) / h, zero(h), one(h))
    for j in 1:c.d
        x0 = sample(p, c, j, k)
        x1 = sample(p, c, j, k + 1)
        if c.interp == LINEAR
            x[j] = x0 + s * (x1 - x0)
        else
            m0 = hermite_slope(p, c, j, k) * h
            m1 = hermite_slope(p, c, j, k + 1) * h
            s2 = s * s
            s3 = s2 * s
            x[j] = (2s3 - 3s2 + 1) * x0 +
                (s3 - 2s2 + s) * m0 +
                (-2s3 + 3s2) * x1 +
                (s3 - s2) * m1
        end
    end
    return x
end

"""
    input_array(c, p, t, Bv) -> (d, Bv)

x(t) for every trajectory at once, out of place and without scalar indexing (the batched field:
GPU arrays and Zygote). The samples are the (d, Ti, Bv) block of `p` at `c.offset`.
"""
function input_array(c::ControlLayout, p, t, Bv::Int)
    ts = c.times
    Ti = length(ts)
    V = reshape(view(p, (c.offset + 1):(c.offset + c.d * Ti * Bv)), c.d, Ti, Bv)
    Ti == 1 && return V[:, 1, :]
    k = c.segment
    c.interp == ZOH && return V[:, k, :]
    t0, t1 = ts[k], ts[k + 1]
    h = t1 - t0
    s = clamp((t - t0) / h, zero(h), one(h))
    x0 = V[:, k, :]
    x1 = V[:, k + 1, :]
    c.interp == LINEAR && return x0 .+ s .* (x1 .- x0)
    slope(i) = i == 1 ?
        (V[:, 2, :] .- V[:, 1, :]) ./ (ts[2] - ts[1]) :
        i == Ti ?
            (V[:, Ti, :] .- V[:, Ti - 1, :]) ./ (ts[Ti] - ts[Ti - 1]) :
            (V[:, i + 1, :] .- V[:, i - 1, :]) ./ (ts[i + 1] - ts[i - 1])
    m0 = slope(k) .* h
    m1 = slope(k + 1) .* h
    s2 = s * s
    s3 = s2 * s
    return (2s3 - 3s2 + 1) .* x0 .+
        (s3 - 2s2 + s) .* m0 .+
        (-2s3 + 3s2) .* x1 .+
        (s3 - s2) .* m1
end
