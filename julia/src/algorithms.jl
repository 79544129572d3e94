# Algorithms by their OrdinaryDiffEq.jl name (the names of `gnode_bridge.contract.ALGORITHMS`), built
# from their specs with the options gnode forwards (`contract.ALGORITHM_OPTIONS`):
#
#   TRBDF2, KenCarp4, Kvaerno5   smooth_est, and the Newton iteration's settings as
#                                nlsolve = NLNewton(; κ = kappa, max_iter, fast_convergence_cutoff = fast_rate)
#                                (OrdinaryDiffEqSDIRK algorithms.jl; OrdinaryDiffEqNonlinearSolve type.jl)
#   RadauIIA5, RadauIIA9         κ = kappa (nothing: OrdinaryDiffEq's 1/100), maxiters = max_iter,
#                                fast_convergence_cutoff (OrdinaryDiffEqFIRK algorithms.jl)
#   AutoTsit5, AutoVern7         AutoTsit5(stiffalg; maxstiffstep, maxnonstiffstep, nonstifftol, stifftol,
#                                stiffalgfirst), the keywords of AutoSwitch (OrdinaryDiffEqCore
#                                composite_algs.jl), with the stiff method built from its nested spec
#
# An option absent from the spec takes OrdinaryDiffEq's default; an option not listed is refused.

const ESDIRK_OPTIONS = ("kappa", "max_iter", "fast_rate", "smooth_est")
const RADAU_OPTIONS = ("kappa", "max_iter", "fast_convergence_cutoff")
const AUTO_OPTIONS = (
    "stiffalg",
    "maxstiffstep",
    "maxnonstiffstep",
    "nonstifftol",
    "stifftol",
    "stiffalgfirst",
)

function esdirk_options(spec)
    nlsolve = NLNewton(;
        κ = Float64(option(spec, "kappa", 1 // 100)),
        max_iter = Int(option(spec, "max_iter", 10)),
        fast_convergence_cutoff = Float64(option(spec, "fast_rate", 1 // 5)),
    )
    return (; nlsolve, smooth_est = Bool(option(spec, "smooth_est", true)))
end

function radau_options(spec)
    kappa = option(spec, "kappa", nothing)
    return (;
        κ = kappa === nothing ? nothing : Float64(kappa),
        maxiters = Int(option(spec, "max_iter", 10)),
        fast_convergence_cutoff = Float64(option(spec, "fast_convergence_cutoff", 1 // 5)),
    )
end

function auto_options(spec)
    return (;
        maxstiffstep = Int(option(spec, "maxstiffstep", 10)),
        maxnonstiffstep = Int(option(spec, "maxnonstiffstep", 3)),
        nonstifftol = Float64(option(spec, "nonstifftol", 9 // 10)),
        stifftol = Float64(option(spec, "stifftol", 9 // 10)),
        stiffalgfirst = Bool(option(spec, "stiffalgfirst", false)),
    )
end

stiff_method(spec) = algorithm(spec["options"]["stiffalg"])

const ALGORITHMS = Dict{String, Function}(
    "Euler" => s -> Euler(),
    "Midpoint" => s -> Midpoint(),
    "RK4" => s -> RK4(),
    "BS3" => s -> BS3(),
    "DP5" => s -> DP5(),
    "Tsit5" => s -> Tsit5(),
    "Vern7" => s -> Vern7(),
    "Vern9" => s -> Vern9(),
    "Rosenbrock23" => s -> Rosenbrock23(),
    "Rodas4" => s -> Rodas4(),
    "Rodas5P" => s -> Rodas5P(),
    "ImplicitEuler" => s -> ImplicitEuler(),
    "Trapezoid" => s -> Trapezoid(),
    "TRBDF2" => s -> TRBDF2(; esdirk_options(s)...),
    "KenCarp4" => s -> KenCarp4(; esdirk_options(s)...),
    "Kvaerno5" => s -> Kvaerno5(; esdirk_options(s)...),
    "FBDF" => s -> FBDF(),
    "QNDF" => s -> QNDF(),
    "RadauIIA5" => s -> RadauIIA5(; radau_options(s)...),
    "RadauIIA9" => s -> RadauIIA9(; radau_options(s)...),
    "AutoTsit5" => s -> AutoTsit5(stiff_method(s); auto_options(s)...),
    "AutoVern7" => s -> AutoVern7(stiff_method(s); auto_options(s)...),
)

# The options each algorithm takes (`contract.ALGORITHM_OPTIONS`); the others take none.
const ALGORITHM_OPTIONS = Dict{String, Tuple}(
    "TRBDF2" => ESDIRK_OPTIONS,
    "KenCarp4" => ESDIRK_OPTIONS,
    "Kvaerno5" => ESDIRK_OPTIONS,
    "RadauIIA5" => RADAU_OPTIONS,
    "RadauIIA9" => RADAU_OPTIONS,
    "AutoTsit5" => AUTO_OPTIONS,
    "AutoVern7" => AUTO_OPTIONS,
)

"""
    algorithm(spec)

A fresh instance of the algorithm a spec (`{"name": ..., "options": {...}}`) describes, with its options.
"""
function algorithm(spec::AbstractDict)
    name = check_options(spec, keys(ALGORITHMS), ALGORITHM_OPTIONS, "algorithm")
    return ALGORITHMS[name](spec)
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
