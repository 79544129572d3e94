"""Engine-free descriptions of algorithms: small immutable objects named as in OrdinaryDiffEq.jl."""

from __future__ import annotations

from dataclasses import dataclass


class AbstractAlgorithm:
    """A method for du/dt = f(t, u). Concrete algorithms are frozen dataclasses; engines map them to steppers.

    order: of the propagated solution; error_order: of the embedded estimate (sets the step-size
    controller's exponents); adaptive: whether it has one.
    """

    order: int
    error_order: int | None
    adaptive: bool

    @property
    def name(self) -> str:
        """The OrdinaryDiffEq.jl name, e.g. "Tsit5"."""
        return type(self).__name__

    def __repr__(self) -> str:  # `Tsit5()`, as a user writes it
        fields = getattr(self, "__dataclass_fields__", {})
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in fields if getattr(self, k) != fields[k].default)
        return f"{self.name}({args})"


@dataclass(frozen=True, repr=False)
class AbstractTableauAlgorithm(AbstractAlgorithm):
    """A method given by its `tableau` (a property of each concrete class), which holds its orders."""

    @property
    def tableau(self):
        raise NotImplementedError

    @property
    def order(self) -> int:
        return self.tableau.order

    @property
    def error_order(self) -> int | None:
        return self.tableau.error_order

    @property
    def adaptive(self) -> bool:
        return self.tableau.adaptive


@dataclass(frozen=True, repr=False)
class AbstractExplicitRK(AbstractTableauAlgorithm):
    """An explicit Runge–Kutta method given by its `tableau` (a `ButcherTableau`)."""
