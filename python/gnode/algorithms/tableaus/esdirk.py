"""ESDIRK tableaus (singly diagonally implicit Runge–Kutta with an explicit first stage) as self-checking data.

Stage i of a step solves Z_i = y0 + dt Σ_{j<i} a_ij F_j + dt γ F_i with F_j = f(t0 + c_j dt, Z_j): stage 0 is
explicit (a_00 = 0), every later stage has the same diagonal γ and needs one (Newton) solve. y1 = y0 + dt Σ b_i F_i,
err = dt Σ b_error_i F_i with b_error = b - b_hat. All methods here are stiffly accurate (b = last row of a), so
the last stage is y1 and F_s = f(t1, y1): the next step's first stage (FSAL). Dense output is the cubic Hermite
interpolant on (y0, F_0, y1, F_s) (order 3), as OrdinaryDiffEq.jl and diffrax use for these methods.

Coefficients: exact rationals where published as such (KenCarp4), verbatim decimals `q("...")` otherwise
(Kvaerno5), √2 to 40 digits for TRBDF2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction as F

from gnode.algorithms.tableaus.butcher import Number, _close, _require, q
from gnode.algorithms.tableaus.rosenbrock import _sqrt


@dataclass(frozen=True)
class ESDIRKTableau:
    """c, a (a[i] has i + 1 entries: a_i0..a_ii, lower triangular incl. the diagonal), b, b_error = b - b_hat.

    Checked on construction: row sums equal c, Σ b = 1, Σ b_error = 0, a_00 = 0 and a constant diagonal γ
    on the implicit stages. Derived: gamma, stiffly_accurate (b equals the last row of a).
    """

    name: str
    order: int
    c: tuple[Number, ...]
    a: tuple[tuple[Number, ...], ...]
    b: tuple[Number, ...]
    b_error: tuple[Number, ...]
    error_order: int
    dense_order: int = 3  # the cubic Hermite interpolant
    gamma: Number = field(init=False)
    stiffly_accurate: bool = field(init=False)

    def __post_init__(self):
        s = len(self.c)
        _require(
            s >= 2 and len(self.a) == s and len(self.b) == s and len(self.b_error) == s,
            f"{self.name}: c, a, b, b_error must have one entry per stage (at least 2)",
        )
        for i, row in enumerate(self.a):
            _require(len(row) == i + 1, f"{self.name}: a[{i}] must have {i + 1} entries (incl. the diagonal)")
            _close(sum(row), self.c[i], f"{self.name}: c[{i}] != sum(a[{i}])")
        _require(self.a[0][0] == 0, f"{self.name}: the first stage must be explicit (a[0][0] = 0)")
        gamma = self.a[1][1]
        _require(
            gamma > 0 and all(self.a[i][i] == gamma for i in range(1, s)),
            f"{self.name}: the implicit stages must share one positive diagonal γ",
        )
        _close(sum(self.b), 1, f"{self.name}: sum(b) != 1")
        _close(sum(self.b_error), 0, f"{self.name}: sum(b_error) != 0")
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "stiffly_accurate", tuple(self.a[-1]) == tuple(self.b))
        _require(self.stiffly_accurate, f"{self.name}: the generic ESDIRK step assumes a stiffly accurate method")

    @property
    def stages(self) -> int:
        return len(self.c)

    @property
    def adaptive(self) -> bool:
        return True


# -------------------------------------------------------------------------------------------------- TRBDF2
# Bank, Coughran, Fichtner, Grosse, Rose & Smith (1985), IEEE Trans. CAD 4(4); as an ESDIRK with the error
# estimate of Hosea & Shampine (1996), "Analysis and implementation of TR-BDF2", Appl. Numer. Math. 20:
# γ = 2 - √2 (c_2), d = γ/2 (diagonal), w = √2/4; b = (w, w, d), b_hat = ((1-w)/3, (3w+1)/3, d/3). Order 2(3),
# L-stable.
_S2 = _sqrt(2)
_TG = 2 - _S2
_TD = _TG / 2
_TW = _S2 / 4

TRBDF2 = ESDIRKTableau(
    name="TRBDF2",
    order=2,
    c=(0, _TG, 1),
    a=((0,), (_TD, _TD), (_TW, _TW, _TD)),
    b=(_TW, _TW, _TD),
    b_error=(_TW - (1 - _TW) / 3, _TW - (3 * _TW + 1) / 3, _TD - _TD / 3),
    error_order=3,
)


# ------------------------------------------------------------------------------------------------ KenCarp4
# Kennedy & Carpenter (2003), "Additive Runge–Kutta schemes for convection–diffusion–reaction equations",
# Appl. Numer. Math. 44, ARK4(3)6L[2]SA: its ESDIRK (implicit) part, as OrdinaryDiffEq.jl's KenCarp4 on a
# non-split problem. γ = 1/4, order 4(3), L-stable, stiffly accurate.
_KC_B = (F(82889, 524892), 0, F(15625, 83664), F(69875, 102672), F(-2260, 8211), F(1, 4))
_KC_B_HAT = (
    F(4586570599, 29645900160),
    0,
    F(178811875, 945068544),
    F(814220225, 1159782912),
    F(-3700637, 11593932),
    F(61727, 225920),
)

KENCARP4 = ESDIRKTableau(
    name="KenCarp4",
    order=4,
    c=(0, F(1, 2), F(83, 250), F(31, 50), F(17, 20), 1),
    a=(
        (0,),
        (F(1, 4), F(1, 4)),
        (F(8611, 62500), F(-1743, 31250), F(1, 4)),
        (F(5012029, 34652500), F(-654441, 2922500), F(174375, 388108), F(1, 4)),
        (F(15267082809, 155376265600), F(-71443401, 120774400), F(730878875, 902184768), F(2285395, 8070912), F(1, 4)),
        _KC_B,
    ),
    b=_KC_B,
    b_error=tuple(b - bh for b, bh in zip(_KC_B, _KC_B_HAT)),
    error_order=3,
)


# ------------------------------------------------------------------------------------------------ Kvaerno5
# Kværnø (2004), "Singly diagonally implicit Runge–Kutta methods with an explicit first stage", BIT 44:
# ESDIRK 5(4) with 7 stages, γ = 0.26, L-stable, stiffly accurate; the embedded order-4 solution is stage 6
# (c_6 = 1). Decimals as published (and as OrdinaryDiffEq.jl and diffrax carry them).
_KV = q("0.26")
_KV_ROW6 = (
    q("0.13855640231268224"),
    0,
    q("-0.04245337201752043"),
    q("0.02446657898003141"),
    q("0.61943039072480676"),
    _KV,
)
_KV_B = (
    q("0.13659751177640291"),
    0,
    q("-0.05496908796538376"),
    q("-0.04118626728321046"),
    q("0.62993304899016403"),
    q("0.06962479448202728"),
    _KV,
)
_KV_ROWS = (
    (0,),
    (_KV, _KV),
    (q("0.13"), q("0.84033320996790809"), _KV),
    (q("0.22371961478320505"), q("0.47675532319799699"), q("-0.06470895363112615"), _KV),
    (q("0.16648564323248321"), q("0.10450018841591720"), q("0.03631482272098715"), q("-0.13090704451073998"), _KV),
    _KV_ROW6,
    _KV_B,
)

KVAERNO5 = ESDIRKTableau(
    name="Kvaerno5",
    order=5,
    c=tuple(sum(row) for row in _KV_ROWS),  # the paper's c are these row sums, printed to fewer digits
    a=_KV_ROWS,
    b=_KV_B,
    b_error=tuple(b - bh for b, bh in zip(_KV_B, _KV_ROW6 + (0,))),
    error_order=4,
)

ESDIRK_TABLEAUS = (TRBDF2, KENCARP4, KVAERNO5)
