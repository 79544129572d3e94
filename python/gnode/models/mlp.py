"""The feed-forward networks F (flow field) and G (gate) of the gnODE (Kim, Can & Krishnamurthy 2023, sec. 2).

For a network of depth L with layer widths N_0 = n, N_1, ..., N_L = n:

    s_0     = phi_pre(h)                                   (phi_pre = identity except in the rate form)
    s_1     = phi_a(W_0 s_0 + U x + b_0)
    s_{l+1} = phi_a(W_l s_l + b_l)                         l = 1 .. L-2
    s_L     = phi_out(W_{L-1} s_{L-1} + b_{L-1})           (for L = 1, s_1 = phi_out(W_0 s_0 + U x + b_0))

with W_l of shape (N_{l+1}, N_l), U of shape (N_1, d_in), b_l of shape (N_{l+1},). The paper takes
phi_out in {identity, tanh} for F, sigmoid for G, and phi_a = ReLU when L > 1. `phi_pre` is the
"activation inside" of the classical rate network `-h + W phi(h) + U x + b` (see `gated.ElmanRNN`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import nn

from gnode.models.activations import get_activation


@dataclass(frozen=True)
class LayerSpec:
    """One affine layer followed by a pointwise activation: s' = activation(W s [+ U x] + b).

    `in_features`/`out_features` are the sizes of s and s'; `takes_input` gives the layer an input weight U
    (out_features, d_in). In the spec this is the dict {"in", "out", "activation", "takes_input"}.
    """

    in_features: int
    out_features: int
    activation: str
    takes_input: bool = False

    def as_dict(self) -> dict:
        return {
            "in": self.in_features,
            "out": self.out_features,
            "activation": self.activation,
            "takes_input": self.takes_input,
        }

    @classmethod
    def from_dict(cls, d: dict, where: str = "layer") -> LayerSpec:
        missing = {"in", "out", "activation", "takes_input"} - set(d)
        if missing:
            raise ValueError(
                f"{where} lacks the key(s) {sorted(missing)}; a layer is "
                "{'in': int, 'out': int, 'activation': str, 'takes_input': bool}"
            )
        return cls(int(d["in"]), int(d["out"]), str(d["activation"]), bool(d["takes_input"]))


class DenseLayer(nn.Module):
    """s' = phi(W s + U x + b); `weight` W (out, in), `input_weight` U (out, d_in) or None, `bias` b (out,).

    Parameters start at zero; `gnode.models.init` draws them.
    """

    def __init__(self, spec: LayerSpec, d_in: int, *, dtype=None, device=None):
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.spec = spec
        self.act = get_activation(spec.activation, where="layer activation")
        self.weight = nn.Parameter(torch.zeros(spec.out_features, spec.in_features, **kw))
        if spec.takes_input and d_in > 0:
            self.input_weight = nn.Parameter(torch.zeros(spec.out_features, d_in, **kw))
        else:
            self.register_parameter("input_weight", None)
        self.bias = nn.Parameter(torch.zeros(spec.out_features, **kw))

    def preactivation(self, s: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
        a = nnf.linear(s, self.weight, self.bias)
        if self.input_weight is not None and x is not None:
            a = a + nnf.linear(x, self.input_weight)
        return a

    def forward(self, s: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        return self.act(self.preactivation(s, x))

    def extra_repr(self) -> str:
        u = f", input {self.input_weight.shape[1]}" if self.input_weight is not None else ""
        return f"{self.spec.in_features} -> {self.spec.out_features}{u}, {self.spec.activation}"


class FeedForward(nn.Module):
    """A fully connected network s_0 = phi_pre(h) -> s_L (module docstring), with its Jacobian d s_L / d h.

    Build the paper's F or G with `FeedForward.build(...)`; `FeedForward(layers, d_in, pre_activation)`
    rebuilds one from its layer list (what a spec stores).
    """

    def __init__(
        self, layers: Sequence[LayerSpec], d_in: int, pre_activation: str = "identity", *, dtype=None, device=None
    ):
        super().__init__()
        layers = list(layers)
        if not layers:
            raise ValueError("FeedForward needs at least one layer")
        for i in range(1, len(layers)):
            if layers[i].in_features != layers[i - 1].out_features:
                raise ValueError(
                    f"layer {i} takes {layers[i].in_features} features but layer {i - 1} gives "
                    f"{layers[i - 1].out_features}; consecutive sizes must chain"
                )
        self.d_in = int(d_in)
        self.pre = get_activation(pre_activation, where="pre_activation")
        self.layers = nn.ModuleList(DenseLayer(s, self.d_in, dtype=dtype, device=device) for s in layers)

    @classmethod
    def build(
        cls,
        n: int,
        d_in: int,
        depth: int,
        widths: int | Sequence[int] | None,
        hidden: str,
        output: str,
        pre_activation: str = "identity",
        *,
        name: str = "network",
        dtype=None,
        device=None,
    ) -> FeedForward:
        """The paper's n -> n network of `depth` layers; only the first layer reads the input x.

        widths: the L-1 hidden widths N_1..N_{L-1} (an int repeats; None means n). hidden: phi_a;
        output: phi_out. `name` ("F", "G") is used in error messages.
        """
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise ValueError(f"depth of {name} must be an integer >= 1, got {depth!r}")
        if widths is None:
            widths = [n] * (depth - 1)
        elif isinstance(widths, int) and not isinstance(widths, bool):
            widths = [widths] * (depth - 1)
        else:
            widths = list(widths)
            if len(widths) != depth - 1:
                raise ValueError(
                    f"width of {name}: a depth-{depth} network has {depth - 1} hidden layer(s), "
                    f"so give {depth - 1} width(s) (or one int), got {widths}"
                )
        for w in widths:
            if not isinstance(w, int) or isinstance(w, bool) or w < 1:
                raise ValueError(f"width of {name} must be positive integers, got {widths}")
        sizes = [n, *widths, n]
        specs = [
            LayerSpec(sizes[i], sizes[i + 1], hidden if i < depth - 1 else output, i == 0 and d_in > 0)
            for i in range(depth)
        ]
        return cls(specs, d_in, pre_activation, dtype=dtype, device=device)

    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def layer_specs(self) -> list[LayerSpec]:
        return [layer.spec for layer in self.layers]

    def architecture(self) -> dict:
        """{"pre_activation": str, "layers": [{"in", "out", "activation", "takes_input"}, ...]}."""
        return {"pre_activation": self.pre.name, "layers": [s.as_dict() for s in self.layer_specs]}

    def forward(self, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        s = self.pre(h)
        for layer in self.layers:
            s = layer(s, x)
        return s

    def forward_and_jacobian(self, h: torch.Tensor, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(s_L (B, out), d s_L / d h (B, out, n)) by the chain rule, layer by layer (forward mode):

        J = diag(phi_{L-1}'(a_{L-1})) W_{L-1} ... diag(phi_0'(a_0)) W_0 diag(phi_pre'(h)).
        """
        s = self.pre(h)
        jac = None
        for i, layer in enumerate(self.layers):
            a = layer.preactivation(s, x)
            s_next = layer.act(a)
            if i == 0:
                w = layer.weight
                jac = w.expand(*h.shape[:-1], *w.shape)
                if self.pre.name != "identity":
                    jac = jac * self.pre.derivative(h, s).unsqueeze(-2)
            else:
                jac = torch.matmul(layer.weight, jac)
            if layer.act.name != "identity":
                jac = layer.act.derivative(a, s_next).unsqueeze(-1) * jac
            s = s_next
        return s, jac
