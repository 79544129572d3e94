# Algorithms by their OrdinaryDiffEq.jl name (the names of `gnode_bridge.contract.ALGORITHMS`).

const ALGORITHMS = Dict{String, Function}(
    "Euler" => () -> Euler(),
    "Midpoint" => () -> Midpoint(),
    "RK4" => () -> RK4(),
    "BS3" => () -> BS3(),
    "DP5" => () -> DP5(),
    "Tsit5" => () -> Tsit5(),
    "Vern7" => () -> Vern7(),
    "Vern9" => () -> Vern9(),
    "Rosenbrock23" => () -> Rosenbrock23(),
    "Rodas4" => () -> Rodas4(),
    "Rodas5P" => () -> Rodas5P(),
    "ImplicitEuler" => () -> ImplicitEuler(),
    "Trapezoid" => () -> Trapezoid(),
    "TRBDF2" => () -> TRBDF2(),
    "KenCarp4" => () -> KenCarp4(),
    "Kvaerno5" => () -> Kvaerno5(),
    "FBDF" => () -> FBDF(),
    "QNDF" => () -> QNDF(),
    "RadauIIA5" => () -> RadauIIA5(),
    "AutoTsit5" => () -> AutoTsit5(Rodas5P()),
    "AutoVern7" => () -> AutoVern7(Rodas5P()),
)

"""
    algorithm(name)

A fresh instance of the algorithm called `name`.
"""
function algorithm(name::AbstractString)
    haskey(ALGORITHMS, name) && return ALGORITHMS[name]()
    known = join(sort!(collect(keys(ALGORITHMS))), ", ")
    throw(ArgumentError("unknown algorithm \"$name\"; the Julia engine has $known"))
end

# SciMLBase.ReturnCode -> gnode.ReturnCode (`gnode_bridge.contract.RETCODES`).
const RETCODES = Dict{String, Int}(
    "Default" => 0,
    "Success" => 1,
    "MaxIters" => 2,
    "DtLessThanMin" => 3,
    "Unstable" => 4,
    "ConvergenceFailure" => 5,
    "Failure" => 6,
)

const RETCODE_ALIASES = Dict{String, String}(
    "Terminated" => "Success",
    "DtNaN" => "Unstable",
)

function gnode_retcode(retcode)
    name = String(Symbol(retcode))
    name = get(RETCODE_ALIASES, name, name)
    return get(RETCODES, name, RETCODES["Failure"])
end

# Rows of the statistics output, in the order of gnode.SolveStats (`contract.STAT_NAMES`).
# OrdinaryDiffEq's DEStats does not count stiffness switches: `nstiffswitch` stays 0.
const STAT_NAMES = (
    :nf,
    :naccept,
    :nreject,
    :njacs,
    :nw,
    :nsolve,
    :nnonliniter,
    :nnonlinconvfail,
    :nstiffswitch,
)

"""
    add_stats!(acc, sol)

Add the counters of `sol.stats` to `acc` (a vector in `STAT_NAMES` order); DEStats marks a counter
it does not keep with -1, which adds nothing.
"""
function add_stats!(acc::AbstractVector{Int}, sol)
    stats = sol.stats
    stats === nothing && return acc
    for (i, name) in enumerate(STAT_NAMES)
        hasproperty(stats, name) || continue
        acc[i] += max(Int(getproperty(stats, name)), 0)
    end
    return acc
end
