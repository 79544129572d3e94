"""Explicit Runge–Kutta tableaus as exact, self-checking data.

A tableau is data; one stepper per engine walks it. Coefficients are stored exactly (`Fraction`; decimals
published with many digits are written `q("0.1234...")`, an exact decimal) and cast per solve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

Number = Fraction | int


def q(decimal: str) -> Fraction:
    """An exact rational from a published decimal string (so float64 casting rounds once, correctly)."""
    return Fraction(decimal)


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit RK method with optional embedded error estimate and continuous extension.

    c, a, b:      the usual tableau; a[i] holds the i coefficients a[i][0..i-1] of stage i.
    b_error:      b - b_hat, the weights of the error estimate err = dt * sum_i b_error[i] k_i (sums to 0);
                  None for fixed-step methods.
    order:        order of the propagated solution (b); error_order: order of b_hat.
    dense:        continuous extension y(t0 + θ dt) = y0 + dt * sum_i b_i(θ) k_i with
                  b_i(θ) = sum_j dense[i][j] θ^(j+1); rows cover the step's stages then `extra` stages.
    dense_order:  order of that interpolant.
    extra_c, extra_a: stages needed only by the interpolant (evaluated lazily, after the step, where asked);
                  extra_a[m] has s + m entries (coupling to the step's stages and earlier extras).
    fsal:         derived — the last stage is f(t1, y1), so it is the next step's first stage.
    """

    name: str
    order: int
    c: tuple[Number, ...]
    a: tuple[tuple[Number, ...], ...]
    b: tuple[Number, ...]
    dense: tuple[tuple[Number, ...], ...]
    dense_order: int
    b_error: tuple[Number, ...] | None = None
    error_order: int | None = None
    extra_c: tuple[Number, ...] = ()
    extra_a: tuple[tuple[Number, ...], ...] = ()
    fsal: bool = field(init=False)

    def __post_init__(self):
        s = len(self.c)
        _require(len(self.a) == s and len(self.b) == s, f"{self.name}: c, a, b must have one entry per stage")
        for i, row in enumerate(self.a):
            _require(len(row) == i, f"{self.name}: a[{i}] must have {i} entries")
            _close(sum(row), self.c[i], f"{self.name}: c[{i}] != sum(a[{i}])")
        _close(sum(self.b), 1, f"{self.name}: sum(b) != 1")
        if self.b_error is not None:
            _require(len(self.b_error) == s, f"{self.name}: b_error needs one entry per stage")
            _close(sum(self.b_error), 0, f"{self.name}: sum(b_error) != 0")
            _require(self.error_order is not None, f"{self.name}: error_order missing")
        _require(len(self.extra_c) == len(self.extra_a), f"{self.name}: extra_c and extra_a differ in length")
        for m, row in enumerate(self.extra_a):
            _require(len(row) == s + m, f"{self.name}: extra_a[{m}] must have {s + m} entries")
            _close(sum(row), self.extra_c[m], f"{self.name}: extra_c[{m}] != sum(extra_a[{m}])")
        _require(len(self.dense) == s + len(self.extra_c), f"{self.name}: dense needs a row per stage (incl. extras)")
        for i, row in enumerate(self.dense):  # b_i(1) = b_i, extras vanish at θ = 1
            _close(sum(row), self.b[i] if i < s else 0, f"{self.name}: dense row {i} at θ=1 != b[{i}]")
        fsal = s > 1 and self.c[-1] == 1 and tuple(self.a[-1]) == tuple(self.b[:-1]) and self.b[-1] == 0
        object.__setattr__(self, "fsal", fsal)

    @property
    def stages(self) -> int:
        return len(self.c)

    @property
    def adaptive(self) -> bool:
        return self.b_error is not None


# Coefficients published as long decimals (q("...")) are truncated, so identities among them hold only up to
# the truncation: ~1e-17 for Tsitouras' interpolant, ~1e-37 for Verner's 40-digit data. A slack of 1e-15 is
# below what float64 resolves in these sums, and far above any truncation, while a typo in the leading
# ~15 digits of a coefficient still fails.
_EXACT_SLACK = Fraction(1, 10**15)


def _require(ok: bool, msg: str) -> None:
    """Validation that survives `python -O` (an `assert` would not)."""
    if not ok:
        raise ValueError(msg)


def _close(x, y, msg: str) -> None:
    if isinstance(x, (Fraction, int)) and isinstance(y, (Fraction, int)):
        _require(abs(Fraction(x) - Fraction(y)) <= _EXACT_SLACK, f"{msg}: {float(x)!r} vs {float(y)!r}")
    else:
        _require(abs(float(x) - float(y)) < 1e-14, f"{msg}: {float(x)!r} vs {float(y)!r}")
