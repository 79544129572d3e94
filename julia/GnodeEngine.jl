"""
    GnodeEngine

The Julia engine of gnode: the gnODE vector field rebuilt from a model's architecture spec and flat
parameter vector (`gnode.models.spec` documents both), solved with OrdinaryDiffEq.jl by the algorithm a
spec names, with its options, differentiated with SciMLSensitivity.jl by the sensitivity algorithm a spec
names, with its options.

The Python bridge (`bridge/gnode_bridge`) calls only the entry points in `src/entry.jl`; their
signatures and array layouts are written down in `bridge/gnode_bridge/contract.py`.
"""
module GnodeEngine

using JSON: JSON
using DiffEqBase: SensitivityADPassThrough
using Enzyme: Enzyme
using SciMLBase: SciMLBase, ODEFunction, ODEProblem, solve
using ForwardDiff: ForwardDiff
using OrdinaryDiffEqLowOrderRK: BS3, DP5, Euler, Midpoint, RK4
using OrdinaryDiffEqTsit5: AutoTsit5, Tsit5
using OrdinaryDiffEqVerner: AutoVern7, Vern7, Vern9
using OrdinaryDiffEqRosenbrock: Rodas4, Rodas5P, Rosenbrock23
using OrdinaryDiffEqSDIRK: ImplicitEuler, KenCarp4, Kvaerno5, TRBDF2, Trapezoid
using OrdinaryDiffEqNonlinearSolve: NLNewton
using OrdinaryDiffEqBDF: FBDF, QNDF
using OrdinaryDiffEqFIRK: RadauIIA5, RadauIIA9
using SciMLSensitivity:
    BacksolveAdjoint,
    EnzymeVJP,
    GaussAdjoint,
    InterpolatingAdjoint,
    QuadratureAdjoint,
    ReverseDiffVJP,
    ZygoteVJP,
    adjoint_sensitivities

include("src/activations.jl")
include("src/request.jl")
include("src/spec.jl")
include("src/inputs.jl")
include("src/field.jl")
include("src/batched.jl")
include("src/algorithms.jl")
include("src/sensitivity.jl")
include("src/segments.jl")
include("src/forward.jl")
include("src/backward.jl")
include("src/entry.jl")

end # module GnodeEngine
