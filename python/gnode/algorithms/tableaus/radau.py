"""Radau IIA tableaus (fully implicit collocation methods) as self-checking data, with the transformation that
Hairer & Wanner's RADAU5 uses to solve their stage equations.

Radau IIA with s stages (Hairer & Wanner II, IV.5): collocation at the nodes c_1 < ... < c_s = 1, the zeros of
d^(s-1)/dx^(s-1) [x^(s-1) (x - 1)^s]; order 2s - 1, stage order s, L-stable, stiffly accurate (b is the last row
of A, so y1 is the last stage). RadauIIA5 has s = 3, RadauIIA9 s = 5.

Derived here from s alone, exactly up to the nodes' 50 digits:
- c: the zeros above, by Newton's method in 60-digit decimal arithmetic, kept as exact 50-digit decimals;
- a: the collocation conditions C(s), a = C_q V^-1 with V_ik = c_i^k and (C_q)_ik = c_i^(k+1) / (k+1), computed
  in Fractions (so C(s) holds exactly for these c, and B(2s - 1) to the nodes' 50 digits);
- dense: the collocation polynomial u(t0 + θ h) = y0 + h Σ_j w_j(θ) K_j, w_j(θ) = ∫_0^θ ℓ_j with ℓ_j the Lagrange
  basis on c and K_j the stage derivatives (w_j(c_i) = a_ij, w_j(1) = b_j); as monomial rows
  w_j(θ) = Σ_m dense[j][m] θ^(m+1), like the other tableaus;
- d: the embedded error estimate of RADAU5 (Hairer & Wanner II, IV.8, eqs. 8.19-8.20). With z_i = h Σ_j a_ij K_j
  the stage increments, err = (I - γ0 h J)^-1 γ0 (h f(t0, y0) + Σ_i d_i z_i), γ0 = 1/γ, where the embedded method
  y0 + h (γ0 f(t0, y0) + Σ_j b̂_j K_j), b̂ = b + γ0 aᵀd, has order s: Σ d_i c_i = -1 and Σ d_i c_i^k = 0 for
  k = 2..s. (For s = 3 this is RADAU5's DD = (-(13 + 7√6)/3, (-13 + 7√6)/3, -1/3).)

Published, then checked: the transformation T, T^-1 with T^-1 A^-1 T = Λ, block diagonal with one real eigenvalue
γ of A^-1 and the complex pairs α_k ± i β_k as blocks [[α_k, -β_k], [β_k, α_k]]. The simplified Newton iteration
runs on w = T^-1 z, where the s n-dimensional systems decouple into one real and (s-1)/2 complex ones. T, T^-1 are
RADAU5's 20-digit decimals (s = 3) and those of Hairer's RADAU as OrdinaryDiffEq.jl ships them (22 digits,
s = 5); their scaling also sets the norm of RADAU5's Newton test, so they are kept as published rather than
recomputed. Checked on construction: T T^-1 = I and T^-1 A^-1 T = Λ to 1e-16 (the published digits give ~1e-18);
γ, α_k, β_k are read off Λ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Context, Decimal, localcontext
from fractions import Fraction

from gnode.algorithms.tableaus.butcher import _require, q

_DIGITS = 50  # of the nodes
_NODE_SLACK = Fraction(1, 10**45)  # identities that hold up to the nodes' digits
_TRANSFORM_SLACK = Fraction(1, 10**16)  # identities through the published 20-22 digit T, T^-1


def radau_nodes(s: int) -> tuple[Fraction, ...]:
    """The s Radau IIA nodes, zeros of d^(s-1)/dx^(s-1) [x^(s-1) (x-1)^s], as exact 50-digit decimals."""
    # the polynomial's integer coefficients (lowest degree first)
    p = [Fraction(0)] * (s - 1) + [Fraction(1)]  # x^(s-1)
    for _ in range(s):  # times (x - 1)
        p = [(p[k - 1] if k > 0 else 0) - (p[k] if k < len(p) else 0) for k in range(len(p) + 1)]
    for _ in range(s - 1):  # differentiate
        p = [k * p[k] for k in range(1, len(p))]
    # p(1) = 0 exactly; the other zeros are simple and lie in (0, 1): bracket each by a sign change of p on a
    # grid (floats suffice to see the sign away from the zeros), then polish by Newton's method in 60 digits
    grid = [i / 1024 for i in range(1024)]
    signs = [_horner([float(a) for a in p], x) for x in grid]
    brackets = [(lo, hi) for lo, hi, u, v in zip(grid, grid[1:], signs, signs[1:]) if u * v < 0]
    _require(len(brackets) == s - 1, f"Radau IIA with {s} stages: found {len(brackets)} interior nodes")
    dp = [k * a for k, a in enumerate(p)][1:]
    nodes = []
    with localcontext(Context(prec=_DIGITS + 10)):
        coef, dcoef = ([Decimal(a.numerator) / Decimal(a.denominator) for a in poly] for poly in (p, dp))
        for lo, hi in brackets:
            x = Decimal((lo + hi) / 2)
            for _ in range(100):
                step = _horner(coef, x) / _horner(dcoef, x)
                x -= step
                if abs(step) < Decimal(10) ** -(_DIGITS + 5):
                    break
            nodes.append(q(str(Context(prec=_DIGITS).plus(x))))
    return tuple(nodes) + (Fraction(1),)


def _horner(coef, x):
    """Σ_k coef[k] x^k."""
    out = coef[-1]
    for a in reversed(coef[:-1]):
        out = out * x + a
    return out


def _solve(M: list[list[Fraction]], rhs: list[list[Fraction]]) -> list[list[Fraction]]:
    """M^-1 rhs by Gauss–Jordan elimination in exact arithmetic (M square, rhs with as many rows)."""
    n = len(M)
    aug = [list(M[i]) + list(rhs[i]) for i in range(n)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if aug[r][col] != 0)
        aug[col], aug[pivot] = aug[pivot], aug[col]
        inv = 1 / aug[col][col]
        aug[col] = [x * inv for x in aug[col]]
        for r in range(n):
            if r != col and aug[r][col] != 0:
                factor = aug[r][col]
                aug[r] = [x - factor * y for x, y in zip(aug[r], aug[col])]
    return [row[n:] for row in aug]


def _matmul(X, Y):
    return [[sum(X[i][k] * Y[k][j] for k in range(len(Y))) for j in range(len(Y[0]))] for i in range(len(X))]


def _transpose(X):
    return [list(r) for r in zip(*X)]


@dataclass(frozen=True)
class RadauIIATableau:
    """The s-stage Radau IIA method with its transformation (see the module docstring).

    Given: name, stages, T and TI (= T^-1, published). Derived and checked on construction: c, a (s × s), b, dense
    (s × s monomial rows), d (error weights), the eigenvalues γ (real), alpha, beta ((s-1)/2 complex pairs) of A^-1,
    and the orders: 2s - 1 (order), s (error_order: the embedded formula's), s (dense_order).
    """

    name: str
    stages: int
    T: tuple[tuple[Fraction, ...], ...]
    TI: tuple[tuple[Fraction, ...], ...]
    c: tuple[Fraction, ...] = field(init=False)
    a: tuple[tuple[Fraction, ...], ...] = field(init=False)
    b: tuple[Fraction, ...] = field(init=False)
    dense: tuple[tuple[Fraction, ...], ...] = field(init=False)
    d: tuple[Fraction, ...] = field(init=False)
    gamma: Fraction = field(init=False)
    alpha: tuple[Fraction, ...] = field(init=False)
    beta: tuple[Fraction, ...] = field(init=False)

    def __post_init__(self):
        s = self.stages
        _require(s >= 3 and s % 2 == 1, f"{self.name}: the transformed Newton iteration needs an odd s >= 3")
        _require(
            len(self.T) == s
            and all(len(r) == s for r in self.T)
            and len(self.TI) == s
            and all(len(r) == s for r in self.TI),
            f"{self.name}: T and TI must be {s} x {s}",
        )
        c = radau_nodes(s)
        V = [[ci**k for k in range(s)] for ci in c]
        Cq = [[ci ** (k + 1) / (k + 1) for k in range(s)] for ci in c]
        a = _transpose(_solve(_transpose(V), _transpose(Cq)))  # a V = C_q  <=>  Vᵀ aᵀ = C_qᵀ
        # w_j(θ) = ∫_0^θ ℓ_j: ℓ_j(τ) = Σ_k L[k][j] τ^k with V L = I, so dense[j][k] = L[k][j] / (k+1)
        L = _solve(V, [[Fraction(int(i == j)) for j in range(s)] for i in range(s)])
        dense = [[L[k][j] / (k + 1) for k in range(s)] for j in range(s)]
        # error weights: Σ d_i c_i = -1, Σ d_i c_i^k = 0 (k = 2..s)
        M = [[ci**k for ci in c] for k in range(1, s + 1)]
        d = [r[0] for r in _solve(M, [[Fraction(-1 if k == 0 else 0)] for k in range(s)])]
        self._check_derived(c, a, dense, d)
        gamma, alpha, beta = self._check_transformation(a)
        for name, value in (
            ("c", c),
            ("a", tuple(map(tuple, a))),
            ("b", tuple(a[-1])),
            ("dense", tuple(map(tuple, dense))),
            ("d", tuple(d)),
            ("gamma", gamma),
            ("alpha", alpha),
            ("beta", beta),
        ):
            object.__setattr__(self, name, value)

    def _check_derived(self, c, a, dense, d):
        s = self.stages
        for i in range(s):
            _close(sum(a[i]), c[i], _NODE_SLACK, f"{self.name}: c[{i}] != sum(a[{i}])")
        for k in range(1, 2 * s):  # B(2s - 1): order 2s - 1 of the quadrature
            _close(
                sum(bi * ci ** (k - 1) for bi, ci in zip(a[-1], c)),
                Fraction(1, k),
                _NODE_SLACK,
                f"{self.name}: B({2 * s - 1}) fails at k = {k}",
            )
        for i in range(s):  # C(s): stage order s (exact by construction)
            for k in range(1, s + 1):
                _close(
                    sum(a[i][j] * c[j] ** (k - 1) for j in range(s)),
                    c[i] ** k / k,
                    _NODE_SLACK,
                    f"{self.name}: C({s}) fails at stage {i}, k = {k}",
                )
        for j in range(s):  # the interpolant passes through the stages and ends at y1
            _close(sum(dense[j]), a[-1][j], _NODE_SLACK, f"{self.name}: w_{j}(1) != b_{j}")
            for i in range(s):
                _close(
                    sum(w * c[i] ** (m + 1) for m, w in enumerate(dense[j])),
                    a[i][j],
                    _NODE_SLACK,
                    f"{self.name}: w_{j}(c_{i}) != a_{i}{j}",
                )
        _close(sum(di * ci for di, ci in zip(d, c)), Fraction(-1), _NODE_SLACK, f"{self.name}: Σ d_i c_i != -1")

    def _check_transformation(self, a):
        """T T^-1 = I and T^-1 A^-1 T = Λ block diagonal; (γ, alpha, beta) read off Λ."""
        s, T, TI = self.stages, [list(r) for r in self.T], [list(r) for r in self.TI]
        product = _matmul(T, TI)
        for i in range(s):
            for j in range(s):
                _close(product[i][j], Fraction(int(i == j)), _TRANSFORM_SLACK, f"{self.name}: T TI != I at ({i}, {j})")
        a_inv = _solve(a, [[Fraction(int(i == j)) for j in range(s)] for i in range(s)])
        lam = _matmul(_matmul(TI, a_inv), T)
        scale = max(abs(x) for row in lam for x in row)
        blocks = {(0, 0)} | {(i, j) for k in range(1, s, 2) for i in (k, k + 1) for j in (k, k + 1)}
        for i in range(s):
            for j in range(s):
                if (i, j) not in blocks:
                    _close(
                        lam[i][j] / scale,
                        Fraction(0),
                        _TRANSFORM_SLACK,
                        f"{self.name}: T^-1 A^-1 T is not block diagonal at ({i}, {j})",
                    )
        for k in range(1, s, 2):
            _close(
                (lam[k][k] - lam[k + 1][k + 1]) / scale,
                Fraction(0),
                _TRANSFORM_SLACK,
                f"{self.name}: complex block {k} has unequal diagonal",
            )
            _close(
                (lam[k][k + 1] + lam[k + 1][k]) / scale,
                Fraction(0),
                _TRANSFORM_SLACK,
                f"{self.name}: complex block {k} is not [[α, -β], [β, α]]",
            )
            _require(lam[k + 1][k] > 0, f"{self.name}: β of block {k} must be positive")
        alpha = tuple((lam[k][k] + lam[k + 1][k + 1]) / 2 for k in range(1, s, 2))
        beta = tuple((lam[k + 1][k] - lam[k][k + 1]) / 2 for k in range(1, s, 2))
        return lam[0][0], alpha, beta

    @property
    def order(self) -> int:
        return 2 * self.stages - 1

    @property
    def error_order(self) -> int:
        return self.stages

    @property
    def dense_order(self) -> int:
        return self.stages

    @property
    def adaptive(self) -> bool:
        return True


def _close(x: Fraction, y: Fraction, slack: Fraction, msg: str) -> None:
    _require(abs(x - y) <= slack, f"{msg}: {float(x)!r} vs {float(y)!r}")


def _rows(*rows: str) -> tuple[tuple[Fraction, ...], ...]:
    return tuple(tuple(q(x) for x in row.split()) for row in rows)


# ---------------------------------------------------------------------------------------------- RadauIIA5
# Hairer & Wanner, radau5.f (1996), the constants of RADCOR: T (T32 = 1, T33 = 0) and TI to 20 digits.
RADAU_IIA5 = RadauIIATableau(
    name="RadauIIA5",
    stages=3,
    T=_rows(
        "9.1232394870892942792e-2 -0.14125529502095420843 -3.0029194105147424492e-2",
        "0.24171793270710701896 0.20412935229379993199 0.38294211275726193779",
        "0.96604818261509293619 1 0",
    ),
    TI=_rows(
        "4.3255798900631553510 0.33919925181580986954 0.54177053993587487119",
        "-4.1787185915519047273 -0.32768282076106238708 0.47662355450055045196",
        "-0.50287263494578687595 2.5719269498556054292 -0.59603920482822492497",
    ),
)

# ---------------------------------------------------------------------------------------------- RadauIIA9
# Hairer's RADAU (variable order, its 5-stage method), as OrdinaryDiffEq.jl's RadauIIA9Tableau carries T
# (T52 = T54 = 1, T53 = T55 = 0) and TI to 22 digits.
RADAU_IIA9 = RadauIIATableau(
    name="RadauIIA9",
    stages=5,
    T=_rows(
        "-1.251758622050104589014e-2 -1.024204781790882707009e-2 4.767387729029572386318e-2 "
        "-1.147851525522951470794e-2 -1.401985889287541028108e-2",
        "-1.491670151895382429004e-3 5.017286451737105816299e-2 -9.433181918161143698066e-2 "
        "-7.668830749180162885157e-3 2.470857842651852681253e-2",
        "-7.298187638808714862266e-2 -2.305395340434179467214e-1 1.027030453801258997922e-1 "
        "1.939846399882895091122e-2 8.180035370375117083639e-2",
        "-3.800914400035681041264e-1 3.778939022488612495439e-1 4.667441303324943592896e-1 "
        "4.076011712801990666217e-1 1.996824278868025259365e-1",
        "-9.219789736812104884883e-1 1 0 1 0",
    ),
    TI=_rows(
        "-3.004156772154440162771e1 -1.386510785627141316518e1 -3.480002774795185561828e0 "
        "1.032008797825263422771e0 -8.043030450739899174753e-1",
        "5.344186437834911598895e0 4.593615567759161004454e0 -3.036360323459424298646e0 "
        "1.05066019023145886386e0 -2.727786118642962705386e-1",
        "3.748059807439804860051e0 -3.984965736343884667252e0 -1.044415641608018792942e0 "
        "1.184098568137948487231e0 -4.499177701567803688988e-1",
        "-3.304188021351900000806e1 -1.737695347906356701945e1 -1.721290632540055611515e-1 "
        "-9.916977798254264258817e-2 5.312281158383066671849e-1",
        "-8.6114439798752919777e0 9.699991409528808231336e0 1.914728639696874284851e0 "
        "2.418692006084940026427e0 -1.047463487935337418694e0",
    ),
)

RADAU_TABLEAUS = (RADAU_IIA5, RADAU_IIA9)
