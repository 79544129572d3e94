"""Many small autonomous generators trained at once: R models of one architecture, stacked.

The expressivity measure fits one model per (seed, target) pair, and these models are tiny (a few hundred
parameters): one at a time, the solver's per-step overhead is all the cost. Stacking R models of the same
architecture, row r of every tensor belonging to model r, makes one batched solve (and one `bmm` per layer)
integrate all of them for about the price of one: on the project's 2-core CPU (CPU time, best of 3), a
forward + backward through 100 RK4 steps costs the same for 16 stacked gnODEs (N = 4, L = 2, W = 16) as for
one (0.97x), and 1.55x for 64.

The members stay the package's own models: an ensemble is built from R initialised members (so every
family keeps its own initialisation), evaluates exactly their function (tests check it against the members
to rounding), and hands any member back as a standalone model with its trained weights (`member`).

    ODEEnsemble       members: `SequenceModel`s (d_in = 0, h0 = "learnable") around a gnODE-family field
                      (GatedNODE, NeuralODE, MinimalGRU, ElmanRNN): y(t) = C h(t) + c,  dh/dt = f(h), h(0) = h0
    GRUEnsemble,      members: `DiscreteGRU` / `DiscreteLSTM` (d_in = 1, h0 = "learnable") run on zero input,
    LSTMEnsemble      one step per sample: h_k = cell(0, h_{k-1}), y_k = C h_k + c

Every ensemble's parameters are stacked along a leading dimension of size R, which is what lets the fitting
loop clip gradients and keep the best weights per member (`member_norms`, `copy_rows_`). The ODE ensemble is
an ordinary row-wise vector field f(t, h, x) for `gnode.solve`: each trajectory carries its member's index as
a constant input x (a zero-order-hold `Control`), and f applies that member's weights to the row, so the
solver may step, drop or reorder rows (per-trajectory adaptivity, compaction of finished rows) freely. The
input weights of the discrete cells never see a nonzero input, so they are neither stacked, trained nor counted.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from gnode.api import solve
from gnode.models.activations import get_activation
from gnode.models.baselines import AbstractDiscreteRNN, DiscreteGRU, DiscreteLSTM
from gnode.models.gated import GatedNODE
from gnode.models.sequence import SequenceModel
from gnode.problem import Control, ODEProblem


def _key(name: str) -> str:
    return name.replace(".", "__")


class AbstractEnsemble(nn.Module):
    """R members of one architecture with their trained parameters stacked: `stacked[_key(name)]` is
    (R, *shape) for the member parameter `name` in `trained_names`."""

    trained_names: tuple[str, ...]

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        members = list(members)
        if not members:
            raise ValueError(f"{type(self).__name__} needs at least one member")
        first = dict(members[0].named_parameters())
        for i, m in enumerate(members):
            if type(m) is not type(members[0]):
                raise TypeError(
                    f"{type(self).__name__}: member {i} is a {type(m).__name__}, member 0 a "
                    f"{type(members[0]).__name__}; an ensemble holds one architecture"
                )
            shapes = {k: tuple(p.shape) for k, p in m.named_parameters()}
            if shapes != {k: tuple(p.shape) for k, p in first.items()}:
                raise ValueError(f"{type(self).__name__}: member {i} has other parameter shapes than member 0")
        missing = [n for n in self.trained_names if n not in first]
        if missing:
            raise ValueError(f"{type(self).__name__}: the members lack the parameters {missing}")
        self.size = len(members)
        self._template = [copy.deepcopy(members[0])]  # a list, so that its parameters are not registered
        self.stacked = nn.ParameterDict(
            {
                _key(n): nn.Parameter(torch.stack([dict(m.named_parameters())[n].detach() for m in members]).clone())
                for n in self.trained_names
            }
        )

    def p(self, name: str) -> torch.Tensor:
        return self.stacked[_key(name)]

    def parameters_per_member(self) -> int:
        """Trained parameters of one member (what the expressivity is plotted against)."""
        return sum(p[0].numel() for p in self.stacked.values())

    @torch.no_grad()
    def member(self, r: int) -> nn.Module:
        """Member `r` as a standalone model of its own class, with the current weights."""
        if not (0 <= r < self.size):
            raise IndexError(f"member {r} out of range for an ensemble of {self.size}")
        m = copy.deepcopy(self._template[0])
        params = dict(m.named_parameters())
        for n in self.trained_names:
            params[n].copy_(self.p(n)[r])
        return m

    def member_norms(self) -> torch.Tensor:
        """(R,) the Euclidean norm of each member's gradient (0 for a member without one)."""
        total = torch.zeros(self.size, dtype=torch.float64)
        for p in self.stacked.values():
            if p.grad is not None:
                total = total + p.grad.detach().double().pow(2).reshape(self.size, -1).sum(1)
        return total.sqrt()

    @torch.no_grad()
    def scale_grads_(self, factor: torch.Tensor) -> None:
        """Multiply member r's gradient by factor[r] (per-member clipping; 0 silences a member)."""
        for p in self.stacked.values():
            if p.grad is not None:
                p.grad.mul_(factor.to(p.grad).reshape(self.size, *([1] * (p.grad.ndim - 1))))

    @torch.no_grad()
    def copy_rows_(self, source: dict[str, torch.Tensor], rows: torch.Tensor) -> None:
        """Set the members where `rows` (R,) is True from `source` (a `state()` snapshot)."""
        for k, p in self.stacked.items():
            mask = rows.reshape(self.size, *([1] * (p.ndim - 1)))
            p.copy_(torch.where(mask, source[k], p))

    def state(self) -> dict[str, torch.Tensor]:
        """A detached copy of the stacked parameters."""
        return {k: p.detach().clone() for k, p in self.stacked.items()}

    def initial_state(self) -> tuple[torch.Tensor, ...]:
        """Each member's learnable initial state: (h0,) (or (h0, c0) for an LSTM), each (R, n)."""
        return tuple(self.p(name) for name in self.state_names)

    def rollout(
        self, state: tuple[torch.Tensor, ...], times: torch.Tensor, **solver
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Run J trajectories per member from `state` (tensors (R, J, n)) over the sample times (m,):
        (y (R, J, m, d_out) at those times, the state at the last one (tensors (R, J, n))). The members are
        autonomous, so only the spacing of `times` matters. `solver`: keywords for ODE families."""
        raise NotImplementedError

    def trajectories(self, times: torch.Tensor, **solver) -> torch.Tensor:
        """y (R, S, d_out) from each member's initial state at the sample times (S,)."""
        y, _ = self.rollout(tuple(s.unsqueeze(1) for s in self.initial_state()), times, **solver)
        return y[:, 0]

    def _readout(self, h: torch.Tensor) -> torch.Tensor:
        """C h + c for h (R, J, m, n) -> (R, J, m, d_out)."""
        return torch.einsum("rjmn,rdn->rjmd", h, self.p("readout.weight")) + self.p("readout.bias")[:, None, None]


class ODEEnsemble(AbstractEnsemble):
    """Stacked autonomous `SequenceModel`s around gnODE-family vector fields (module docstring).

    `rollout` solves all trajectories of all members as one batch with `gnode.solve` (`alg`, `dt` for
    fixed-step methods, tolerances for adaptive ones); `forward(t, h, x)` is the stacked vector field, with x
    (B, 1) the member index of each row.
    """

    def __init__(self, members: Sequence[SequenceModel]):
        for i, m in enumerate(members):
            if not isinstance(m, SequenceModel) or not isinstance(m.vector_field, GatedNODE):
                raise TypeError(
                    f"ODEEnsemble: member {i} must be a SequenceModel around a gnODE-family field "
                    f"(GatedNODE, NeuralODE, MinimalGRU, ElmanRNN), got {type(m).__name__}"
                )
            vf = m.vector_field
            if vf.d_in != 0 or m.h0 is None or vf.learn_tau:
                raise ValueError(
                    f"ODEEnsemble: member {i} must be autonomous (d_in = 0) with a learnable h0 and a fixed tau"
                )
        vf = members[0].vector_field
        self.trained_names = tuple(n for n, _ in members[0].named_parameters())
        super().__init__(members)
        self.n, self.d_in, self.leak, self.tau = vf.n, 0, vf.leak, float(vf.tau)
        self.nets = {}
        for net_name in ("F", "G"):
            net = getattr(vf, net_name)
            if net is None:
                continue
            self.nets[net_name] = (
                net.pre.name,
                [
                    (
                        f"vector_field.{net_name}.layers.{i}.weight",
                        f"vector_field.{net_name}.layers.{i}.bias",
                        layer.spec.activation,
                    )
                    for i, layer in enumerate(net.layers)
                ],
            )

    state_names = ("h0",)

    def _net(self, name: str, s: torch.Tensor, member: torch.Tensor, per_member: int | None) -> torch.Tensor:
        """Network `name` of member[i] on row i of s (B, n) -> (B, n). When the rows are the whole batch in
        member order (`per_member` rows each, the usual case) the stacked weights apply as they are; otherwise
        (the solver dropped finished rows) each row gathers its member's weights."""
        pre, layers = self.nets[name]
        s = get_activation(pre)(s)
        if per_member is not None:
            s = s.reshape(self.size, per_member, -1)
            for w, b, act in layers:
                s = get_activation(act)(torch.baddbmm(self.p(b).unsqueeze(1), s, self.p(w).transpose(1, 2)))
            return s.reshape(member.numel(), -1)
        s = s.unsqueeze(-1)
        for w, b, act in layers:
            s = get_activation(act)(torch.baddbmm(self.p(b)[member].unsqueeze(-1), self.p(w)[member], s))
        return s.squeeze(-1)

    def _per_member(self, member: torch.Tensor) -> int | None:
        """J when `member` is 0 (J times), 1 (J times), ..., R-1 (J times), else None."""
        rows = member.numel()
        if rows % self.size:
            return None
        per = rows // self.size
        return per if torch.equal(member, torch.arange(self.size).repeat_interleave(per)) else None

    def forward(self, t: torch.Tensor, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """dh/dt (B, n) as `GatedNODE.forward`, row i with the weights of member x[i, 0] (module docstring)."""
        if x is None or x.shape != (h.shape[0], 1):
            raise ValueError("ODEEnsemble: the input x must be (batch, 1), each row's member index (see rollout)")
        member = x[:, 0].round().long()
        per_member = self._per_member(member)
        drive = self._net("F", h, member, per_member)
        if self.leak:
            drive = drive - h
        if "G" in self.nets:
            drive = self._net("G", h, member, per_member) * drive
        return drive / self.tau

    def rollout(
        self,
        state,
        times,
        *,
        alg=None,
        dt: float | None = None,
        reltol: float = 1e-6,
        abstol: float = 1e-8,
        maxiters: int = 100_000,
    ):
        """One `gnode.solve` of all R*J trajectories (fixed-step `alg` with `dt`, or adaptive with tolerances).
        Trajectories whose solve fails (a blow-up) come back as NaN rather than an exception."""
        (h,) = state
        rows = h.shape[1]
        h = h.reshape(-1, self.n)
        broken = ~torch.isfinite(h.detach()).all(-1)  # a state a blown-up member left: solved from 0, then NaN
        h = torch.where(broken[:, None], torch.zeros_like(h), h)
        member = torch.arange(self.size, dtype=h.dtype).repeat_interleave(rows)  # row r*J + j: member r
        span = (float(times[0]), float(times[-1]))
        control = Control(torch.tensor(span, dtype=h.dtype), member[:, None, None].expand(-1, 2, 1), "zoh")
        prob = ODEProblem(self, h, span, inputs=control)
        sol = solve(prob, alg, saveat=times, dt=dt, reltol=reltol, abstol=abstol, maxiters=maxiters, throw=False)
        u = torch.where(broken[:, None, None], torch.full_like(sol.u, math.nan), sol.u)
        u = u.reshape(self.size, rows, times.numel(), self.n)
        return self._readout(u), (u[:, :, -1],)


class _DiscreteEnsemble(AbstractEnsemble):
    """Stacked discrete RNN generators run on zero input (module docstring)."""

    member_type: type[AbstractDiscreteRNN]
    gates: int

    def __init__(self, members: Sequence[AbstractDiscreteRNN]):
        for i, m in enumerate(members):
            if not isinstance(m, self.member_type) or m.h0_mode != "learnable":
                raise TypeError(
                    f"{type(self).__name__}: member {i} must be a {self.member_type.__name__} with "
                    f"h0='learnable', got {type(m).__name__}"
                )
        self.trained_names = (
            "rnn.weight_hh_l0",
            "rnn.bias_ih_l0",
            "rnn.bias_hh_l0",
            "readout.weight",
            "readout.bias",
            *members[0].state_names,
        )
        super().__init__(members)
        self.n = members[0].n

    @property
    def state_names(self) -> tuple[str, ...]:
        return self._template[0].state_names

    def _gates(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(input part b_ih (R, 1, gates * n), hidden part W_hh h + b_hh (R, J, gates * n)), torch's gate order."""
        hid = torch.baddbmm(self.p("rnn.bias_hh_l0").unsqueeze(1), h, self.p("rnn.weight_hh_l0").transpose(1, 2))
        return self.p("rnn.bias_ih_l0").unsqueeze(1), hid

    def _step(self, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def rollout(self, state, times, **_solver):
        """One cell step on zero input per further sample."""
        hs = [state[0]]
        for _ in range(times.numel() - 1):
            state = self._step(state)
            hs.append(state[0])
        return self._readout(torch.stack(hs, dim=2)), state


class GRUEnsemble(_DiscreteEnsemble):
    """Stacked `DiscreteGRU`s: torch.nn.GRU's cell (Cho et al. 2014) with x = 0,
    r = sig(b_ir + W_hr h + b_hr), z = sig(b_iz + W_hz h + b_hz), n = tanh(b_in + r (W_hn h + b_hn)),
    h' = (1 - z) n + z h."""

    member_type = DiscreteGRU

    def _step(self, state):
        h = state[0]
        gi, gh = self._gates(h)
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return ((1 - z) * n + z * h,)


class LSTMEnsemble(_DiscreteEnsemble):
    """Stacked `DiscreteLSTM`s: torch.nn.LSTM's cell (Hochreiter & Schmidhuber 1997) with x = 0, gates
    i, f, g, o in torch's order, c' = f c + i g, h' = o tanh(c')."""

    member_type = DiscreteLSTM

    def _step(self, state):
        h, c = state
        gi, gh = self._gates(h)
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


def ensemble_of(members: Sequence[nn.Module]) -> AbstractEnsemble:
    """The ensemble class that fits `members` (all of one architecture)."""
    first = members[0] if len(members) else None
    if isinstance(first, SequenceModel):
        return ODEEnsemble(members)
    if isinstance(first, DiscreteLSTM):
        return LSTMEnsemble(members)
    if isinstance(first, DiscreteGRU):
        return GRUEnsemble(members)
    raise TypeError(
        f"no ensemble for members of type {type(first).__name__}; use SequenceModel (d_in = 0), "
        "DiscreteGRU or DiscreteLSTM"
    )
