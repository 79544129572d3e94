"""The model families the expressivity measure compares, as autonomous generators of d_out outputs.

    gnode   tau dh/dt = G(h) * (-h + F(h)), F and G of depth L and hidden width W   (GatedNODE)
    node    tau dh/dt = -h + F(h), F of depth L and width W                          (NeuralODE)
    mgru    the gnODE with L = 1 (minimal gated recurrent unit in continuous time)   (MinimalGRU)
    elman   tau dh/dt = -h + W tanh(h) + b (the classical rate network)             (ElmanRNN)
    linear  tau dh/dt = -h + W h + b, a linear ODE (F of depth 1, identity output)   (NeuralODE) - the
            family with a closed-form capacity, N / 2 modes, for the measure's own tests
    gru     torch.nn.GRU run on zero input, one step per sample                      (DiscreteGRU)
    lstm    torch.nn.LSTM run on zero input, one step per sample                     (DiscreteLSTM)

Every member has a linear readout y = C h + c and a learnable initial state h0 (counted in its parameters),
and is initialised as the package initialises it ("critical" for the ODE families, torch's default for
the discrete cells). `matched_latent` finds, for a family whose size is set by N alone, the N whose
parameter count is nearest a given one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from gnode.models import DiscreteGRU, DiscreteLSTM, ElmanRNN, GatedNODE, MinimalGRU, NeuralODE, SequenceModel

FAMILIES = {
    "gnode": "gated neural ODE: tau dh/dt = G(h) * (-h + F(h)), F and G of depth L, width W",
    "node": "neural ODE (no gate): tau dh/dt = -h + F(h), F of depth L, width W",
    "mgru": "minimal GRU in continuous time (the gnODE with L = 1)",
    "elman": "Elman rate network: tau dh/dt = -h + W tanh(h) + b",
    "linear": "linear ODE: tau dh/dt = -h + W h + b (capacity N/2 modes: a reference)",
    "gru": "discrete GRU on zero input, one step per sample (torch.nn.GRU)",
    "lstm": "discrete LSTM on zero input, one step per sample (torch.nn.LSTM)",
}
DEPTH_FAMILIES = ("gnode", "node")  # the families whose flow field has a depth L and width W
DISCRETE = ("gru", "lstm")


@dataclass(frozen=True)
class FamilySpec:
    """One architecture: `family` (see FAMILIES), latent dimension N, flow-field depth L and hidden width W
    (gnode and node only; the others have L = 1 and no width), readout to `d_out` outputs, time constant tau."""

    family: str
    latent: int
    depth: int = 1
    width: int = 32
    d_out: int = 1
    tau: float = 1.0

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown model family {self.family!r}; choose from {', '.join(FAMILIES)}")
        for name in ("latent", "depth", "width", "d_out"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"FamilySpec: {name} must be an integer >= 1, got {v!r}")
        if self.family not in DEPTH_FAMILIES and self.depth != 1:
            raise ValueError(
                f"the {self.family} family has depth 1 only (got depth={self.depth}); depth applies "
                f"to {' and '.join(DEPTH_FAMILIES)}"
            )
        if isinstance(self.tau, bool) or not isinstance(self.tau, (int, float)) or not (0 < self.tau < math.inf):
            raise ValueError(f"FamilySpec: tau must be a positive finite number, got {self.tau!r}")

    @property
    def discrete(self) -> bool:
        return self.family in DISCRETE

    @property
    def label(self) -> str:
        if self.family in DEPTH_FAMILIES:
            width = f", W={self.width}" if self.depth > 1 else ""
            return f"{self.family} N={self.latent} L={self.depth}{width}"
        return f"{self.family} N={self.latent}"

    def as_dict(self) -> dict:
        return asdict(self)

    def build(self, seed: int, dtype: torch.dtype = torch.float64):
        """One member, its weights drawn from `seed` (never from the global RNG state)."""
        gen = torch.Generator().manual_seed(seed)
        n, kw = self.latent, {"dtype": dtype}
        if self.discrete:
            cls = DiscreteGRU if self.family == "gru" else DiscreteLSTM
            with torch.random.fork_rng(devices=[]):  # torch's RNN and Linear draw from the global RNG
                torch.manual_seed(seed)
                member = cls(n, 1, self.d_out, h0="learnable", **kw)
            with torch.no_grad():
                for s in member.state_names:
                    getattr(member, s).copy_(torch.randn(n, generator=gen, dtype=dtype))
            return member
        width = [self.width] * (self.depth - 1) if self.depth > 1 else None
        common = {"tau": self.tau, "generator": gen, **kw}
        if self.family == "gnode":
            vf = GatedNODE(n, 0, depth_F=self.depth, depth_G=self.depth, width_F=width, width_G=width, **common)
        elif self.family == "node":
            vf = NeuralODE(n, 0, depth=self.depth, width=width, **common)
        elif self.family == "mgru":
            vf = MinimalGRU(n, 0, **common)
        elif self.family == "elman":
            vf = ElmanRNN(n, 0, phi="tanh", form="rate", **common)
        else:  # linear: identity output, critical gain (the origin marginal: neither decaying nor growing)
            vf = NeuralODE(n, 0, depth=1, phi_h="identity", **common)
        member = SequenceModel(vf, self.d_out, h0="learnable")
        with torch.no_grad():  # readout ~ N(0, 1/N), h0 ~ N(0, 1): a trajectory that starts away from the origin
            member.readout.weight.copy_(torch.randn(self.d_out, n, generator=gen, dtype=dtype) / math.sqrt(n))
            member.readout.bias.zero_()
            member.h0.copy_(torch.randn(n, generator=gen, dtype=dtype))
        return member

    def parameter_count(self) -> int:
        """Trained parameters of one member (input weights of the discrete cells excluded: they see only 0)."""
        from gnode.expressivity.ensemble import ensemble_of

        return ensemble_of([self.build(0)]).parameters_per_member()


def matched_latent(family: str, parameters: int, *, d_out: int = 1, max_latent: int = 512) -> int:
    """The N of `family` (one of those sized by N alone) whose parameter count is nearest `parameters`
    (ties: the smaller N)."""
    if family in DEPTH_FAMILIES:
        raise ValueError(f"matched_latent sizes families set by N alone; {family} also has a depth and width")
    best = None
    for n in range(1, max_latent + 1):
        count = FamilySpec(family, n, d_out=d_out).parameter_count()
        if best is None or abs(count - parameters) < abs(best[1] - parameters):
            best = (n, count)
        if count > parameters:
            break
    return best[0]
