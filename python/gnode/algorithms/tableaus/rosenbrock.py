"""Rosenbrock (linearly implicit) tableaus as exact, self-checking data.

Stored in the W-transformed form that OrdinaryDiffEq.jl ships and walks (Hairer & Wanner II, IV.7, eq. 7.25;
`lib/OrdinaryDiffEqRosenbrock*/src/rosenbrock_tableaus.jl`): with J = ∂f/∂y(t0, y0) and f_t = ∂f/∂t(t0, y0),
stage i solves the linear system

    (I / (dt γ) - J) k_i = f(t0 + c_i dt, y0 + Σ_{j<i} a_ij k_j) + Σ_{j<i} (C_ij / dt) k_j + dt d_i f_t,

and y1 = y0 + Σ_i b_i k_i, err = Σ_i b_error_i k_i (b_error = b - b_hat, as for the explicit tableaus).
The k_i are increments (not derivatives). Dense output: y(t0 + θ dt) = y0 + Σ_i w_i(θ) k_i with
w_i(θ) = Σ_m dense[i][m] θ^(m+1); Rodas-type interpolants (an "H" matrix, rows h_1..h_r) are converted to this
form by `from_rodas_h`: y(θ) = (1-θ) y0 + θ (y1 + (1-θ)(h_1 + θ(h_2 + θ h_3))).

The form relates to Hairer & Wanner's (I - dt γ J) K_i = dt f(y0 + Σ α_ij K_j) + dt J Σ_{j<i} γ_ij K_j + dt² γ_i f_t
(K = Γ^-1 k with Γ = (γ_ij), γ_ii = γ) by A = α Γ^-1, C = diag(1/γ) - Γ^-1, b = b_HW Γ^-1, d_i = γ_i = Σ_j γ_ij;
`hairer_wanner_form()` inverts it, which is what the order-condition tests use.

Published decimals are kept verbatim as exact `q("...")` values; irrational coefficients (√2 in Rosenbrock23)
are exact to 40 digits (`_sqrt`), far below float64 resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Context, Decimal
from fractions import Fraction

from gnode.algorithms.tableaus.butcher import Number, _require, q

# Rodas4/Rodas5P are published as float64-printed decimals of the transformed coefficients, so identities that
# pass through Γ = (diag(1/γ) - C)^-1 (entries of C up to ~100) hold only to ~5e-15 (measured). A slack of 1e-13
# still fails a typo in the leading ~13 digits of any coefficient.
_DATA_SLACK = Fraction(1, 10**13)


def _close(x, y, msg: str) -> None:
    _require(abs(Fraction(x) - Fraction(y)) <= _DATA_SLACK, f"{msg}: {float(x)!r} vs {float(y)!r}")


@dataclass(frozen=True)
class RosenbrockTableau:
    """A Rosenbrock method in W-transformed form (see the module docstring for the formulas).

    gamma:        the diagonal γ of Hairer–Wanner's Γ.
    a, C:         a[i], C[i] hold the i coefficients of stage i on k_0..k_{i-1} (a[0] = C[0] = ()).
    c, d:         stage times and time-derivative weights (d_i = γ_i, the row sums of Γ).
    b, b_error:   solution weights and b - b_hat of the embedded solution (None: fixed step only).
    dense:        rows w_i(θ) = Σ_m dense[i][m] θ^(m+1), one per stage; dense_order: its order.
    fsal:         derived — the last stage evaluates f at (t1, y1), so that value is the next step's f(t0, y0).
    """

    name: str
    order: int
    gamma: Number
    a: tuple[tuple[Number, ...], ...]
    C: tuple[tuple[Number, ...], ...]
    c: tuple[Number, ...]
    d: tuple[Number, ...]
    b: tuple[Number, ...]
    dense: tuple[tuple[Number, ...], ...]
    dense_order: int
    b_error: tuple[Number, ...] | None = None
    error_order: int | None = None
    fsal: bool = field(init=False)

    def __post_init__(self):
        s = len(self.c)
        _require(
            all(len(x) == s for x in (self.a, self.C, self.d, self.b, self.dense)),
            f"{self.name}: a, C, c, d, b and dense must have one entry per stage",
        )
        for i in range(s):
            _require(
                len(self.a[i]) == i and len(self.C[i]) == i, f"{self.name}: a[{i}] and C[{i}] must have {i} entries"
            )
        _require(self.gamma > 0, f"{self.name}: gamma must be positive")
        # In Hairer–Wanner form the usual RK identities hold: c_i = Σ_j α_ij, d_i = Σ_j γ_ij, Σ b = 1.
        alpha, Gamma, b_hw, _ = self.hairer_wanner_form()
        for i in range(s):
            _close(sum(alpha[i]), self.c[i], f"{self.name}: c[{i}] != sum(alpha[{i}])")
            _close(sum(Gamma[i]), self.d[i], f"{self.name}: d[{i}] != sum(Gamma[{i}])")
        _close(sum(b_hw), 1, f"{self.name}: sum(b) != 1 (in Hairer–Wanner form)")
        if self.b_error is not None:
            _require(len(self.b_error) == s, f"{self.name}: b_error needs one entry per stage")
            _require(self.error_order is not None, f"{self.name}: error_order missing")
            err_hw = _row_times(self.b_error, Gamma)
            _close(sum(err_hw), 0, f"{self.name}: sum(b_error) != 0 (in Hairer–Wanner form)")
        for i, row in enumerate(self.dense):  # w_i(1) = b_i: the interpolant ends on y1
            _close(sum(row), self.b[i], f"{self.name}: dense row {i} at θ=1 != b[{i}]")
        fsal = s > 1 and self.c[-1] == 1 and tuple(self.a[-1]) == tuple(self.b[:-1]) and self.b[-1] == 0
        object.__setattr__(self, "fsal", fsal)

    @property
    def stages(self) -> int:
        return len(self.c)

    @property
    def adaptive(self) -> bool:
        return self.b_error is not None

    def hairer_wanner_form(self):
        """(α, Γ, b, b_error) of the untransformed method, exactly: Γ = (diag(1/γ) - C)^-1, α = A Γ, b = b Γ."""
        s = self.stages
        g = Fraction(self.gamma)
        inv_gamma = [
            [(1 / g if i == j else -Fraction(self.C[i][j]) if j < i else Fraction(0)) for j in range(s)]
            for i in range(s)
        ]
        Gamma = _lower_inverse(inv_gamma)
        A = [[Fraction(self.a[i][j]) if j < i else Fraction(0) for j in range(s)] for i in range(s)]
        alpha = [_row_times(A[i], Gamma) for i in range(s)]
        b = _row_times(self.b, Gamma)
        err = None if self.b_error is None else _row_times(self.b_error, Gamma)
        return alpha, Gamma, b, err

    def dense_hairer_wanner(self):
        """The interpolant's θ-polynomial rows in Hairer–Wanner form (w^T Γ), one per stage."""
        _, Gamma, _, _ = self.hairer_wanner_form()
        degree = max(len(r) for r in self.dense)
        cols = [[Fraction(r[m]) if m < len(r) else Fraction(0) for r in self.dense] for m in range(degree)]
        per_power = [_row_times(col, Gamma) for col in cols]  # power m → stage weights
        return [tuple(per_power[m][i] for m in range(degree)) for i in range(self.stages)]


def from_hairer_wanner(name, order, gamma, alpha, Gamma, c, b, b_hat, error_order, dense, dense_order):
    """A `RosenbrockTableau` from the untransformed coefficients (α, Γ full lower triangular incl. diagonal γ,
    b, b_hat, dense rows in terms of the K_i), transformed exactly: A = α Γ^-1, C = diag(1/γ) - Γ^-1, b Γ^-1."""
    s = len(c)
    G = [[Fraction(Gamma[i][j]) if j <= i else Fraction(0) for j in range(s)] for i in range(s)]
    Ginv = _lower_inverse(G)
    al = [[Fraction(alpha[i][j]) if j < i else Fraction(0) for j in range(s)] for i in range(s)]
    A = [_row_times(al[i], Ginv) for i in range(s)]
    C = [[(1 / G[i][i] if i == j else 0) - Ginv[i][j] for j in range(s)] for i in range(s)]
    b_t = _row_times(b, Ginv)
    err = _row_times([Fraction(x) - Fraction(y) for x, y in zip(b, b_hat)], Ginv)
    degree = max(len(r) for r in dense)
    cols = [[Fraction(r[m]) if m < len(r) else Fraction(0) for r in dense] for m in range(degree)]
    per_power = [_row_times(col, Ginv) for col in cols]
    dense_t = tuple(tuple(per_power[m][i] for m in range(degree)) for i in range(s))
    d = tuple(sum(G[i][: i + 1]) for i in range(s))
    return RosenbrockTableau(
        name=name,
        order=order,
        gamma=Fraction(gamma),
        a=tuple(tuple(A[i][:i]) for i in range(s)),
        C=tuple(tuple(C[i][:i]) for i in range(s)),
        c=tuple(c),
        d=d,
        b=tuple(b_t),
        dense=dense_t,
        dense_order=dense_order,
        b_error=tuple(err),
        error_order=error_order,
    )


def from_rodas_h(b: tuple, H: tuple[tuple, ...]) -> tuple[tuple[Number, ...], ...]:
    """Dense rows w_i(θ) for y(θ) = (1-θ) y0 + θ (y1 + (1-θ)(h_1 + θ(h_2 + θ h_3 ...))), h_j = Σ_i H[j][i] k_i.

    Expanding: w_i(θ) = b_i θ + Σ_j H[j][i] (θ^j - θ^(j+1)), so the coefficient of θ^1 is b_i + H[0][i] and of
    θ^(m+1), m >= 1, is H[m][i] - H[m-1][i] (H[r] = 0)."""
    r = len(H)
    rows = []
    for i, bi in enumerate(b):
        h = [Fraction(H[j][i]) for j in range(r)] + [Fraction(0)]
        rows.append(tuple([Fraction(bi) + h[0]] + [h[m] - h[m - 1] for m in range(1, r + 1)]))
    return tuple(rows)


def _row_times(row, M):
    """row^T M for a row vector and a square matrix (lists), exactly."""
    n = len(M)
    return [sum((Fraction(row[i]) * M[i][j] for i in range(n) if row[i]), Fraction(0)) for j in range(n)]


def _lower_inverse(L):
    """Inverse of a lower-triangular matrix by forward substitution, exactly."""
    n = len(L)
    inv = [[Fraction(0)] * n for _ in range(n)]
    for col in range(n):
        for i in range(col, n):
            acc = Fraction(1 if i == col else 0) - sum((L[i][k] * inv[k][col] for k in range(col, i)), Fraction(0))
            inv[i][col] = acc / L[i][i]
    return inv


def _sqrt(x: int, digits: int = 40) -> Fraction:
    """√x as an exact decimal to `digits` significant digits (far below float64 resolution)."""
    return Fraction(Decimal(x).sqrt(Context(prec=digits)))


# --------------------------------------------------------------------------------------------- Rosenbrock23
# Shampine & Reichelt (1997), "The MATLAB ODE suite", SIAM J. Sci. Comput. 18(1) — the method of ode23s,
# as OrdinaryDiffEq.jl's Rosenbrock23: a 2-stage order-2 W-method, L-stable, with a third stage f(t1, y1)
# (FSAL) that gives an order-3 error estimate, d = 1/(2 + √2), e32 = 6 + √2. Rewritten in Hairer–Wanner form
# (K_i = dt k_i of the paper): stage 2 is (I - dt d J) K2 = dt f(y0 + K1/2) - dt d J K1; stage 3 uses
# dt f1 = W K2 + dt d J K1 and dt f0 = W K1 - dt² d f_t to eliminate f0, f1 from the paper's formula, giving
# γ31 = (e32 - 2) d, γ32 = -e32 d. err = (K1 - 2 K2 + K3)/6 is b_hat - b with b_hat = (1, 4, 1)/6 (order 3).
# Interpolant (paper, sec. 3): y(θ) = y0 + θ(1-θ)/(1-2d) K1 + θ(θ-2d)/(1-2d) K2.
_S2 = _sqrt(2)
_D = 1 / (2 + _S2)
_E32 = 6 + _S2

ROSENBROCK23 = from_hairer_wanner(
    name="Rosenbrock23",
    order=2,
    gamma=_D,
    alpha=((), (Fraction(1, 2),), (0, 1)),
    Gamma=((_D,), (-_D, _D), ((_E32 - 2) * _D, -_E32 * _D, _D)),
    c=(0, Fraction(1, 2), 1),
    b=(0, 1, 0),
    b_hat=(Fraction(1, 6), Fraction(2, 3), Fraction(1, 6)),
    error_order=3,
    dense=((1 / (1 - 2 * _D), -1 / (1 - 2 * _D)), (-2 * _D / (1 - 2 * _D), 1 / (1 - 2 * _D)), (0, 0)),
    dense_order=2,
)


# ------------------------------------------------------------------------------------------------- Rodas4
# Hairer & Wanner (1996), Solving ODEs II, sec. IV.7 (Table 7.? "RODAS"), in the transformed form of
# OrdinaryDiffEq.jl (`RODAS4A`, `RODAS4C`, `RODAS4c`, `RODAS4d`, `RODAS4H`). Stiffly accurate: b is the last row
# of A with b_6 = 1, and the embedded solution is the argument of stage 6, so b_error = e_6. Order 4(3), L-stable,
# order-3 dense output from the two H rows.
_RODAS4_A = (
    (),
    (q("1.544"),),
    (q("0.9466785280815826"), q("0.2557011698983284")),
    (q("3.314825187068521"), q("2.896124015972201"), q("0.9986419139977817")),
    (q("1.221224509226641"), q("6.019134481288629"), q("12.53708332932087"), q("-0.687886036105895")),
    (q("1.221224509226641"), q("6.019134481288629"), q("12.53708332932087"), q("-0.687886036105895"), 1),
)
_RODAS4_H = (
    (
        q("10.12623508344586"),
        q("-7.487995877610167"),
        q("-34.80091861555747"),
        q("-7.992771707568823"),
        q("1.025137723295662"),
        0,
    ),
    (
        q("-0.6762803392801253"),
        q("6.087714651680015"),
        q("16.43084320892478"),
        q("24.76722511418386"),
        q("-6.594389125716872"),
        0,
    ),
)
_RODAS4_B = _RODAS4_A[-1] + (1,)

RODAS4 = RosenbrockTableau(
    name="Rodas4",
    order=4,
    gamma=Fraction(1, 4),
    a=_RODAS4_A,
    C=(
        (),
        (q("-5.6688"),),
        (q("-2.430093356833875"), q("-0.2063599157091915")),
        (q("-0.1073529058151375"), q("-9.594562251023355"), q("-20.47028614809616")),
        (q("7.496443313967647"), q("-10.24680431464352"), q("-33.99990352819905"), q("11.7089089320616")),
        (
            q("8.083246795921522"),
            q("-7.981132988064893"),
            q("-31.52159432874371"),
            q("16.31930543123136"),
            q("-6.058818238834054"),
        ),
    ),
    c=(0, q("0.386"), q("0.21"), q("0.63"), 1, 1),
    d=(q("0.25"), q("-0.1043"), q("0.1035"), q("-0.0362"), 0, 0),
    b=_RODAS4_B,
    b_error=(0, 0, 0, 0, 0, 1),
    error_order=3,
    dense=from_rodas_h(_RODAS4_B, _RODAS4_H),
    dense_order=3,
)


# ------------------------------------------------------------------------------------------------ Rodas5P
# Steinebach (2023), "Construction of Rosenbrock–Wanner method Rodas5P and numerical benchmarks within the
# Julia Differential Equations package", BIT Numer. Math. 63:27; transformed coefficients as OrdinaryDiffEq.jl
# ships them (`RODAS5PA`, `RODAS5PC`, `RODAS5Pc`, `RODAS5Pd`, `RODAS5PH`). 8 stages, order 5(4), stiffly
# accurate (b = last row of A, b_8 = 1; b_error = e_8), L-stable, with an order-4 dense output (three H rows).
_RODAS5P_ROW = (
    q("-7.502846399306121"),
    q("2.561846144803919"),
    q("-11.627539656261098"),
    q("-0.18268767659942256"),
    q("0.030198172008377946"),
)
_RODAS5P_A = (
    (),
    (q("3.0"),),
    (q("2.849394379747939"), q("0.45842242204463923")),
    (q("-6.954028509809101"), q("2.489845061869568"), q("-10.358996098473584")),
    (q("2.8029986275628964"), q("0.5072464736228206"), q("-0.3988312541770524"), q("-0.04721187230404641")),
    _RODAS5P_ROW,
    _RODAS5P_ROW + (1,),
    _RODAS5P_ROW + (1, 1),
)
_RODAS5P_H = (
    (
        q("25.948786856663858"),
        q("-2.5579724845846235"),
        q("10.433815404888879"),
        q("-2.3679251022685204"),
        q("0.524948541321073"),
        q("1.1241088310450404"),
        q("0.4272876194431874"),
        q("-0.17202221070155493"),
    ),
    (
        q("-9.91568850695171"),
        q("-0.9689944594115154"),
        q("3.0438037242978453"),
        q("-24.495224566215796"),
        q("20.176138334709044"),
        q("15.98066361424651"),
        q("-6.789040303419874"),
        q("-6.710236069923372"),
    ),
    (
        q("11.419903575922262"),
        q("2.8879645146136994"),
        q("72.92137995996029"),
        q("80.12511834622643"),
        q("-52.072871366152654"),
        q("-59.78993625266729"),
        q("-0.15582684282751913"),
        q("4.883087185713722"),
    ),
)
_RODAS5P_B = _RODAS5P_A[-1] + (1,)

RODAS5P = RosenbrockTableau(
    name="Rodas5P",
    order=5,
    gamma=q("0.21193756319429014"),
    a=_RODAS5P_A,
    C=(
        (),
        (q("-14.155112264123755"),),
        (q("-17.97296035885952"), q("-2.859693295451294")),
        (q("147.12150275711716"), q("-1.41221402718213"), q("71.68940251302358")),
        (q("165.43517024871676"), q("-0.4592823456491126"), q("42.90938336958603"), q("-5.961986721573306")),
        (
            q("24.854864614690072"),
            q("-3.0009227002832186"),
            q("47.4931110020768"),
            q("5.5814197821558125"),
            q("-0.6610691825249471"),
        ),
        (
            q("30.91273214028599"),
            q("-3.1208243349937974"),
            q("77.79954646070892"),
            q("34.28646028294783"),
            q("-19.097331116725623"),
            q("-28.087943162872662"),
        ),
        (
            q("37.80277123390563"),
            q("-3.2571969029072276"),
            q("112.26918849496327"),
            q("66.9347231244047"),
            q("-40.06618937091002"),
            q("-54.66780262877968"),
            q("-9.48861652309627"),
        ),
    ),
    c=(0, q("0.6358126895828704"), q("0.4095798393397535"), q("0.9769306725060716"), q("0.4288403609558664"), 1, 1, 1),
    d=(
        q("0.21193756319429014"),
        q("-0.42387512638858027"),
        q("-0.3384627126235924"),
        q("1.8046452872882734"),
        q("2.325825639765069"),
        0,
        0,
        0,
    ),
    b=_RODAS5P_B,
    b_error=(0, 0, 0, 0, 0, 0, 0, 1),
    error_order=4,
    dense=from_rodas_h(_RODAS5P_B, _RODAS5P_H),
    dense_order=4,
)

ROSENBROCK_TABLEAUS = (ROSENBROCK23, RODAS4, RODAS5P)
