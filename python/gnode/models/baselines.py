"""Discrete-time GRU (Cho et al. 2014) and LSTM (Hochreiter & Schmidhuber 1997) baselines, with the
`SequenceModel` interface: forward(x (B, T, d_in), times (T,), h0=None) -> SequenceOutput(y, h, sol=None).

One sample is one step. The spacing of `times` is ignored (only its length is checked) unless the model is
built with `time_gaps=True`: then the gap t_{k+1} - t_k is an extra input channel beside x_k, the usual way a
discrete RNN is told about irregular sampling (`gnode.models.irregular`). times may be (T,) or (B, T) per
sequence (padding repeats the last time, so its gap is 0; outputs before the padding never see it). The alignment
matches the ODE model with zero-order-hold inputs: h_0 = h0 and h_k = cell(x_{k-1}, h_{k-1}), so h_k has
seen x_0 .. x_{k-1} and y_k = C h_k + c (the last input x_{T-1} is not used, as in the ODE model, where it
only acts after t_{T-1}).
"""

from __future__ import annotations

import torch
from torch import nn

from gnode.models.flat import SPEC_VERSION, FlatParameters, dtype_name
from gnode.models.irregular import check_sequence_times, time_gaps
from gnode.models.sequence import H0_MODES, SequenceOutput, check_sequence_inputs, initial_state


class AbstractDiscreteRNN(FlatParameters, nn.Module):
    """A single-layer torch RNN (`rnn_type`), a linear readout and an initial state ("learnable" or "zeros")."""

    rnn_type: type[nn.RNNBase]
    state_names: tuple[str, ...]  # "h0" (GRU) or "h0", "c0" (LSTM)

    def __init__(
        self,
        n: int,
        d_in: int,
        d_out: int,
        *,
        h0: str = "zeros",
        time_gaps: bool = False,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        nn.Module.__init__(self)
        name = type(self).__name__
        for what, v in (("n", n), ("d_in", d_in), ("d_out", d_out)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: {what} must be an integer >= 1, got {v!r}")
        if h0 not in H0_MODES:
            raise ValueError(f"{name}: h0 must be one of {H0_MODES}, got {h0!r}")
        kw = {"dtype": dtype, "device": device}
        self.n, self.d_in, self.d_out, self.h0_mode, self.time_gaps = n, d_in, d_out, h0, bool(time_gaps)
        self.rnn = self.rnn_type(d_in + self.time_gaps, n, batch_first=True, **kw)
        self.readout = nn.Linear(n, d_out, **kw)
        for s in self.state_names:
            if h0 == "learnable":
                setattr(self, s, nn.Parameter(torch.zeros(n, **kw)))
            else:
                self.register_parameter(s, None)

    def _run(self, x: torch.Tensor, states: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, times, h0: torch.Tensor | None = None) -> SequenceOutput:
        """h0 (B, n) or (n,) overrides the initial hidden state (an LSTM's cell state starts at c0)."""
        if isinstance(times, torch.Tensor) and times.ndim == 2:
            _, x = check_sequence_inputs(self, x, torch.arange(times.shape[1]), need_x=True)
            times = times.to(dtype=x.dtype, device=x.device)
            check_sequence_times(times, x.shape[0], x.shape[1], where=type(self).__name__)
        else:
            times, x = check_sequence_inputs(self, x, times, need_x=True)
        like = self.readout.weight.detach()
        batch = x.shape[0]
        if self.time_gaps:
            x = torch.cat([x, time_gaps(times).expand(batch, -1, -1)], dim=-1)
        states = [
            initial_state(self, h0 if s == "h0" else None, batch, self.n, getattr(self, s), like, what=s)
            for s in self.state_names
        ]
        out = self._run(x[:, :-1], [s[None].contiguous() for s in states])
        h = torch.cat([states[0][:, None], out], dim=1)
        return SequenceOutput(self.readout(h), h, None)

    def flat_entries(self) -> list[tuple[str, nn.Parameter]]:
        """rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0 (torch's gate order), readout.weight,
        readout.bias, then the learnable initial states."""
        entries = [(f"rnn.{k}", p) for k, p in self.rnn.named_parameters()]
        entries += [("readout.weight", self.readout.weight), ("readout.bias", self.readout.bias)]
        entries += [(s, getattr(self, s)) for s in self.state_names if getattr(self, s) is not None]
        return entries

    def spec(self) -> dict:
        return {
            "format": "gnode.discrete_rnn",
            "version": SPEC_VERSION,
            "family": type(self).__name__,
            "dtype": dtype_name(self.readout.weight.dtype),
            "n": self.n,
            "d_in": self.d_in,
            "d_out": self.d_out,
            "h0": self.h0_mode,
            "time_gaps": self.time_gaps,
            "parameters": self.flat_layout(),
        }


class DiscreteGRU(AbstractDiscreteRNN):
    """torch.nn.GRU (one layer) + linear readout, stepping once per sample (module docstring)."""

    rnn_type = nn.GRU
    state_names = ("h0",)

    def _run(self, x, states):
        return self.rnn(x, states[0])[0]


class DiscreteLSTM(AbstractDiscreteRNN):
    """torch.nn.LSTM (one layer) + linear readout; `h` is the LSTM's hidden output (the cell state is internal)."""

    rnn_type = nn.LSTM
    state_names = ("h0", "c0")

    def _run(self, x, states):
        return self.rnn(x, (states[0], states[1]))[0]
