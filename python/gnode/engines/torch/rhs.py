"""Right-hand sides as the loop and the steppers see them.

`AbstractRHS` is a vector field over the rows of a batch, with the inputs folded in: `evaluate(t, y, seg, rows)`,
its Jacobian and time derivative. `ProblemRHS` is f(t, y[, x(t)]) of an `ODEProblem`; the adjoints define their
own systems (`sensitivity/adjoint.py`). `local(seg, rows)` fixes one step's input segment and global row indices
and gives the `StepRHS` a stepper calls as rhs(t, y).

Steps never straddle a breakpoint of the control; `segment(t)` names the one a step starting at t (in the
direction of integration) lies in, so that a zero-order hold is evaluated on the right side.
"""

from __future__ import annotations

import torch

from gnode.engines.torch.jacobian import jacobian, time_derivative


class AbstractRHS:
    """A row-wise vector field with optional inputs (`control`), integrated forwards or `backward` in time.

    traced: the field is evaluated inside a compiled graph (derivatives then use `torch.func`)."""

    control = None
    backward: bool = False
    traced: bool = False

    def evaluate(self, t, y, seg=None, rows=None):
        raise NotImplementedError

    def jacobian(self, t, y, seg=None, rows=None):
        raise NotImplementedError

    def time_derivative(self, t, y, f0, dt, seg=None, rows=None):
        return time_derivative(lambda tt, yy: self.evaluate(tt, yy, seg, rows), t, y, f0, dt, traced=self.traced)

    def __call__(self, t, y, seg=None, rows=None):
        return self.evaluate(t, y, seg, rows)

    def first(self, t, y, seg=None):
        """The first evaluation of a solve (a subclass may check what f returns)."""
        return self.evaluate(t, y, seg)

    def segment(self, t):
        return None if self.control is None else self.control.segment(t, left=self.backward)

    def local(self, seg, rows) -> StepRHS:
        return StepRHS(self, seg, rows)

    def as_traced(self) -> AbstractRHS:
        """This field for use inside a compiled graph."""
        raise NotImplementedError


class StepRHS:
    """The right-hand side of one step: an `AbstractRHS` at a fixed input segment and set of rows.

    seg: (B,) input segments or None; rows: (B,) global row indices of the working batch, or None for all rows."""

    __slots__ = ("field", "rows", "seg")

    def __init__(self, field: AbstractRHS, seg, rows):
        self.field, self.seg, self.rows = field, seg, rows

    def __call__(self, t, y):
        return self.field.evaluate(t, y, self.seg, self.rows)

    def jacobian(self, t, y):
        return self.field.jacobian(t, y, self.seg, self.rows)

    def time_derivative(self, t, y, f0, dt):
        return self.field.time_derivative(t, y, f0, dt, self.seg, self.rows)

    def subset(self, idx: torch.Tensor) -> StepRHS:
        """The same step on the rows `idx` (indices into this step's batch)."""
        return StepRHS(
            self.field, None if self.seg is None else self.seg[idx], idx if self.rows is None else self.rows[idx]
        )


class ProblemRHS(AbstractRHS):
    """f of an `ODEProblem` with its control (or a replacement `control`, e.g. one with differentiable values)."""

    def __init__(self, prob, control=None, direction: float = 1.0, traced: bool = False):
        self.f, self.control = prob.f, prob.inputs if control is None else control
        self.backward = direction < 0
        self.traced = traced

    def as_traced(self) -> ProblemRHS:
        new = object.__new__(ProblemRHS)
        new.f, new.control, new.backward, new.traced = self.f, self.control, self.backward, True
        return new

    def inputs(self, t, seg, rows):
        return None if self.control is None else self.control.evaluate(t, seg, rows)

    def evaluate(self, t, y, seg=None, rows=None):
        if self.control is None:
            return self.f(t, y)
        return self.f(t, y, self.control.evaluate(t, seg, rows))

    def jacobian(self, t, y, seg=None, rows=None):
        """∂f/∂y row-wise (B, n, n): f's own `jacobian` if it has one, else autodiff."""
        return jacobian(self.f, t, y, self.inputs(t, seg, rows), traced=self.traced)

    def first(self, t, y, seg=None):
        """The first evaluation, checked: f must return a tensor like u (same shape, dtype and device)."""
        signature = "f(t, u)" if self.control is None else "f(t, u, x)"
        try:
            out = self.evaluate(t, y, seg)
        except TypeError as e:
            if self.control is not None and "positional argument" in str(e):
                raise TypeError(
                    f"the problem has inputs, so f is called as f(t, u, x) with x (batch, dim) "
                    f"= x(t); make f accept x ({e})"
                ) from e
            raise
        name = getattr(self.f, "__qualname__", type(self.f).__name__)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{signature} ({name}) must return a tensor, got {type(out).__name__}")
        if out.shape != y.shape:
            raise ValueError(
                f"{signature} ({name}) returned shape {tuple(out.shape)} for u of shape "
                f"{tuple(y.shape)}; it must return du/dt with u's shape (batch, n), row by row"
            )
        if out.dtype != y.dtype or out.device != y.device:
            raise TypeError(
                f"{signature} ({name}) returned {out.dtype} on {out.device} for u in {y.dtype} on "
                f"{y.device}; return du/dt in u's dtype and device (e.g. cast its parameters with "
                f"module.to(u0.dtype))"
            )
        return out
