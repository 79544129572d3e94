"""The pointwise nonlinearities of the gnODE family, by name, with the derivatives the Jacobian needs.

A name here is part of the architecture spec (see `gnode.models.spec`): another engine must implement
exactly these functions.

    identity  phi(a) = a                       phi'(a) = 1
    tanh      phi(a) = tanh(a)                 phi'(a) = 1 - tanh(a)^2
    relu      phi(a) = max(a, 0)               phi'(a) = 1 if a > 0 else 0   (0 at a = 0, as torch)
    sigmoid   phi(a) = 1 / (1 + exp(-a))       phi'(a) = sigmoid(a) (1 - sigmoid(a))

`mean_square_slope` is E[phi'(a)^2] for pre-activations a infinitesimally close to 0 and symmetric about
it: the factor a layer contributes to the spectral radius of the Jacobian at the origin (see
`gnode.models.init`). For ReLU it is 1/2: along a random direction half of the units are on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Activation:
    """A named pointwise nonlinearity.

    derivative(a, s): phi'(a) given the pre-activation `a` and the output `s = phi(a)` (whichever is cheaper).
    value_at_zero: phi(0); a network whose activations vanish at 0 maps the origin to the origin at zero bias.
    mean_square_slope: E[phi'(a)^2] for a -> 0 symmetric (see the module docstring).
    """

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    derivative: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    value_at_zero: float
    mean_square_slope: float

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        return self.fn(a)


def _identity(a: torch.Tensor) -> torch.Tensor:
    return a


ACTIVATIONS: dict[str, Activation] = {
    "identity": Activation("identity", _identity, lambda a, s: torch.ones_like(a), 0.0, 1.0),
    "tanh": Activation("tanh", torch.tanh, lambda a, s: 1 - s * s, 0.0, 1.0),
    "relu": Activation("relu", torch.relu, lambda a, s: (a > 0).to(a.dtype), 0.0, 0.5),
    "sigmoid": Activation("sigmoid", torch.sigmoid, lambda a, s: s * (1 - s), 0.5, 1.0 / 16.0),
}


def get_activation(name: str, *, where: str = "activation", allowed: tuple[str, ...] | None = None) -> Activation:
    """The activation called `name`; `where` names the argument in the error for an unknown one."""
    choices = allowed if allowed is not None else tuple(ACTIVATIONS)
    if not isinstance(name, str) or name not in choices:
        raise ValueError(f"{where} must be one of {', '.join(map(repr, choices))}, got {name!r}")
    return ACTIVATIONS[name]
