"""Stored float64 references for the stiff tests: SciPy Radau (rtol 1e-12, exact Jacobian) on the problems of
`gnode.bench.problems`, at a few times each. Storing them keeps ~30 s of Radau out of the default test run; the
`slow` test `test_stored_references_are_radau` recomputes every one and checks them to 1e-10 (relative to
|u| + the problem's absolute scale), and `regenerate()` prints them afresh.

HIRES at t = 321.8122 also agrees with the published reference solution of the IVP Test Set (Mazzia &
Magherini, "Test Set for Initial Value Problem Solvers", release 2.4, Bari 2008): `HIRES_TEST_SET`.
"""

from __future__ import annotations

import numpy as np

from gnode.bench.problems import CLASSIC, stiff_gnode

# gnODE batch of the stiff tests: n = 8 units, 4 trajectories, gates spread over 1e-4..0.9, tau = 1e-4,
# so the unit timescales span ~1.1e-4..1 over t in [0, 1].
GNODE = stiff_gnode(n=8, batch=4)
PROBLEMS = {p.name: p for p in CLASSIC} | {GNODE.name: GNODE}

# name: (times, u at those times: (T, n) for the single-trajectory problems, (batch, T, n) for the gnODE batch)
REFERENCE = {
    "robertson": (
        [1.0, 100.0, 100000.0],
        [
            [0.966459737333001, 3.0746265785786765e-05, 0.03350951640121228],
            [0.6172348823960773, 6.153591274639586e-06, 0.38275896401264664],
            [0.017865921142108655, 7.274751468440123e-08, 0.9821340061103759],
        ],
    ),
    "vanderpol": (
        [500.0, 1000.0, 3000.0],
        [
            [1.5967689510556782, -0.0010303911878366816],
            [-1.8636462548109065, 0.0007535430865396484],
            [-1.5106069367599528, 0.0011783800006902542],
        ],
    ),
    "hires": (
        [5.0, 321.8122],
        [
            [
                0.03165167570457032,
                0.006481549531058389,
                0.004583451064747402,
                0.08974323273518306,
                0.1624514537526547,
                0.6850438961444284,
                0.005646700341920561,
                5.329965807944544e-05,
            ],
            [
                0.0007371312573325547,
                0.00014424857263161607,
                5.8887297409673536e-05,
                0.0011756513432831259,
                0.002386356198830987,
                0.00623896825274176,
                0.0028499983951855135,
                0.002850001604814491,
            ],
        ],
    ),
    "oregonator": (
        [50.0, 360.0],
        [
            [1.000688690025984, 1453.0195991744035, 414.8368434740491],
            [1.0008148703185227, 1228.1785215499062, 132.0554942846616],
        ],
    ),
    "gnode_n8_b4": (
        [0.01, 1.0],
        [
            [
                [
                    -0.8097836258113792,
                    0.31344439604324137,
                    -0.7718900718426935,
                    0.11152507408300877,
                    0.22755967406265426,
                    -0.1365952263263066,
                    0.7855404171679802,
                    0.6259547471099516,
                ],
                [
                    -0.042432600588371366,
                    0.3854762733650269,
                    -0.009382667314425198,
                    0.10126934681521,
                    -0.09184240775596177,
                    0.09364407219900059,
                    0.017737129060610042,
                    -0.3249840881308758,
                ],
            ],
            [
                [
                    -0.3041121393206684,
                    0.23290254046712805,
                    -0.7996500345968827,
                    -0.3465524813725012,
                    0.08575037202407827,
                    0.08784162520354892,
                    -0.07214712917520337,
                    -0.014460173580360855,
                ],
                [
                    -0.006218404674365366,
                    0.16654125164714872,
                    -0.004588479616158866,
                    0.057039463966300656,
                    -0.04984154809659186,
                    0.05782062844110738,
                    0.013475867466480294,
                    -0.14209212774789184,
                ],
            ],
            [
                [
                    -1.7268859155119072,
                    -0.44010738696880897,
                    0.34806402983052026,
                    0.020625204698553907,
                    0.8100523000084091,
                    -0.917539759850836,
                    0.9877174747439194,
                    0.962115318774954,
                ],
                [
                    -0.22509251871870264,
                    0.6570659921928828,
                    -0.00732334376349259,
                    0.010230636368245864,
                    -0.03315522151203092,
                    -0.056555957877846896,
                    -0.03922142964901379,
                    -0.5398149259054105,
                ],
            ],
            [
                [
                    1.3331320923790064,
                    0.8016913833162221,
                    -0.3804719686465634,
                    0.3444534869309256,
                    -0.46671066671108735,
                    0.9450846172608967,
                    -0.9729531510568601,
                    -0.9748755910216643,
                ],
                [
                    0.1641862578982302,
                    -0.5188797928950022,
                    0.003421947906961784,
                    -0.027130496346688314,
                    0.04364643260148509,
                    0.023186622550208206,
                    0.02478197036224822,
                    0.4406829846142851,
                ],
            ],
        ],
    ),
}

HIRES_TEST_SET = (
    0.7371312573325668e-3,
    0.1442485726316185e-3,
    0.5888729740967575e-4,
    0.1175651343283149e-2,
    0.2386356198831331e-2,
    0.6238968252742796e-2,
    0.2849998395185769e-2,
    0.2850001604814231e-2,
)


def reference(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(times (T,), u (batch, T, n)) of the stored reference."""
    times, u = REFERENCE[name]
    u = np.asarray(u, dtype=np.float64)
    return np.asarray(times, dtype=np.float64), (u[None] if u.ndim == 2 else u)


def radau(name: str, rtol: float = 1e-12) -> np.ndarray:
    """A fresh SciPy Radau solution at the stored times, (batch, T, n)."""
    p = PROBLEMS[name]
    times, _ = reference(name)
    return p.reference(times, rtol=rtol, atol=1e-14 if name == GNODE.name else None)


def regenerate() -> None:
    for name in REFERENCE:
        u = radau(name)
        print(name, repr((u[0] if u.shape[0] == 1 else u).tolist()))
