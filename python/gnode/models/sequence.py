"""The sequence model: inputs sampled at given times -> an ODE solve of a vector field -> a linear readout.

    x (B, T, d_in) at times (T,)  --Control(interpolation)-->  x(t)
    h(t_0) = h0,  dh/dt = f(t, h, x(t))                        (any gnODE-family vector field, or any row-wise f)
    y_k = C h(t_k) + c                                         (B, T, d_out)

With "zoh" inputs, x(t) = x_k on [t_k, t_{k+1}), so h(t_k) has seen x_0 .. x_{k-1}: y_0 = C h0 + c depends on
no input. The discrete baselines (`gnode.models.baselines`) follow the same alignment.
"""

from __future__ import annotations

import inspect
from typing import NamedTuple

import torch
from torch import nn

from gnode.api import solve
from gnode.models.flat import SPEC_VERSION, FlatParameters, dtype_name
from gnode.models.irregular import check_sequence_times, merge_times, resample
from gnode.problem import INTERPOLATIONS, Control, ODEProblem
from gnode.solution import ODESolution

H0_MODES = ("learnable", "zeros")
_SET_BY_MODEL = ("saveat", "reltol", "abstol", "sensealg", "engine")


class SequenceOutput(NamedTuple):
    """y (B, T, d_out) the readout, h (B, T, n) the latent trajectory at the sample times, sol the
    `ODESolution` (its `stats`, `retcodes` and dense output `sol(t)` for plotting between samples; None for
    discrete models)."""

    y: torch.Tensor
    h: torch.Tensor
    sol: ODESolution | None


def check_targets(y: torch.Tensor, targets: torch.Tensor, *, where: str = "targets") -> None:
    """Raise a clear error unless `targets` has the shape, dtype and device of the model output `y` (B, T, d_out)."""
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"{where} must be a tensor (batch, time, d_out), got {type(targets).__name__}")
    if targets.shape != y.shape:
        if targets.ndim != y.ndim:
            hint = "; for one output per step use targets[..., None]" if targets.ndim == y.ndim - 1 else ""
            raise ValueError(
                f"{where} must be (batch, time, d_out) = {tuple(y.shape)} like the model output, "
                f"got shape {tuple(targets.shape)}{hint}"
            )
        names = ("batch", "time", "d_out")[-y.ndim :] if y.ndim <= 3 else tuple(f"dim {i}" for i in range(y.ndim))
        bad = [f"{nm} {a} vs {b}" for nm, a, b in zip(names, targets.shape, y.shape) if a != b]
        fix = f" (build the readout with d_out={targets.shape[-1]})" if targets.shape[-1] != y.shape[-1] else ""
        raise ValueError(
            f"{where} shape {tuple(targets.shape)} does not match the model output {tuple(y.shape)}: "
            f"{', '.join(bad)} (targets vs output){fix}"
        )
    if targets.dtype != y.dtype:
        raise TypeError(
            f"{where} have dtype {targets.dtype} but the model output has {y.dtype}; "
            f"cast them with {where}.to({y.dtype})"
        )
    if targets.device != y.device:
        raise ValueError(f"{where} are on {targets.device} but the model output is on {y.device}")


def check_sequence_inputs(
    model, x: torch.Tensor | None, times, *, need_x: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate x (B, T, d_in) against `model.d_in` and times (T,); returns (times tensor, x)."""
    like = next(model.parameters()).detach()
    name = type(model).__name__
    if x is None:
        if need_x:
            raise ValueError(
                f"{name}: the model takes d_in={model.d_in} inputs, so x (batch, time, {model.d_in}) is required"
            )
    else:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: x must be a tensor (batch, time, d_in), got {type(x).__name__}")
        if x.ndim != 3:
            raise ValueError(
                f"{name}: x must be (batch, time, d_in), got shape {tuple(x.shape)}"
                + ("; for one sequence use x[None]" if x.ndim == 2 else "")
            )
        if x.shape[2] != model.d_in:
            raise ValueError(
                f"{name}: x has {x.shape[2]} input features (shape {tuple(x.shape)}) but the model "
                f"was built with d_in={model.d_in}; rebuild it with d_in={x.shape[2]} or fix the data"
            )
        if x.dtype != like.dtype:
            raise TypeError(
                f"{name}: x has dtype {x.dtype} but the model's parameters are {like.dtype}; "
                f"use x.to({like.dtype}) or model.to({x.dtype})"
            )
        if x.device != like.device:
            raise ValueError(f"{name}: x is on {x.device} but the model is on {like.device}")
    if isinstance(times, torch.Tensor):
        times = times.to(dtype=like.dtype, device=like.device)
    else:
        times = torch.as_tensor(times, dtype=like.dtype, device=like.device)
    if times.ndim != 1:
        raise ValueError(f"{name}: times must be 1-D (time,), got shape {tuple(times.shape)}")
    if times.numel() < 2:
        raise ValueError(f"{name}: need at least 2 sample times, got {times.numel()}")
    if x is not None and times.numel() != x.shape[1]:
        raise ValueError(
            f"{name}: {times.numel()} times but x has {x.shape[1]} time steps (shape {tuple(x.shape)}); they must match"
        )
    if not bool((torch.diff(times) > 0).all()):
        i = int((torch.diff(times) <= 0).nonzero()[0])
        raise ValueError(
            f"{name}: times must be strictly increasing, but times[{i}] = {times[i].item():.6g} and "
            f"times[{i + 1}] = {times[i + 1].item():.6g}"
        )
    return times, x


def initial_state(
    model,
    h0: torch.Tensor | None,
    batch: int,
    n: int,
    learned: torch.Tensor | None,
    like: torch.Tensor,
    what: str = "h0",
) -> torch.Tensor:
    """h0 (B, n) from a given (B, n) or (n,) tensor, else the learnable one, else zeros."""
    name = type(model).__name__
    if h0 is None:
        if learned is not None:
            return learned.expand(batch, n)
        return torch.zeros(batch, n, dtype=like.dtype, device=like.device)
    if not isinstance(h0, torch.Tensor):
        raise TypeError(f"{name}: {what} must be a tensor (batch, {n}) or ({n},), got {type(h0).__name__}")
    if h0.ndim == 1:
        h0 = h0.expand(batch, -1)
    if h0.ndim != 2 or h0.shape[1] != n or h0.shape[0] != batch:
        raise ValueError(
            f"{name}: {what} must be ({batch}, {n}) (or ({n},) shared by the batch), got shape {tuple(h0.shape)}"
        )
    if h0.dtype != like.dtype:
        raise TypeError(f"{name}: {what} has dtype {h0.dtype} but the model's parameters are {like.dtype}")
    return h0


class SequenceModel(FlatParameters, nn.Module):
    """A continuous-time sequence model around a vector field (module docstring).

    vector_field: a row-wise `f(t, h, x)` module with attributes `n` and `d_in` (a `GatedNODE` or reduction).
    d_out:        readout dimension (y = C h + c).
    alg, sensealg, engine, reltol, abstol: passed to `gnode.solve` (alg None means its default, Tsit5()).
    interpolation: how the samples become x(t): "zoh" (default), "linear", "cubic" (see `gnode.Control`).
    h0:           "learnable" (a parameter, initially 0) or "zeros"; `forward(..., h0=...)` overrides it.
    solve_kwargs: further keywords of `gnode.solve` (dt, dtmin, dtmax, maxiters, tstops, throw).

    forward(x (B, T, d_in) or None, times (T,), h0=None) -> SequenceOutput(y, h, sol). With times (B, T),
    one row per sequence (irregular sampling, variable lengths padded at the end; `gnode.models.irregular`),
    y and h are at each row's own times and `sol` is the solve on the union of the rows' times.
    """

    def __init__(
        self,
        vector_field: nn.Module,
        d_out: int,
        *,
        alg=None,
        sensealg=None,
        engine: str = "torch",
        reltol: float = 1e-6,
        abstol: float = 1e-8,
        interpolation: str = "zoh",
        h0: str = "learnable",
        solve_kwargs: dict | None = None,
    ):
        nn.Module.__init__(self)
        if (
            not isinstance(vector_field, nn.Module)
            or not hasattr(vector_field, "n")
            or not hasattr(vector_field, "d_in")
        ):
            raise TypeError(
                "SequenceModel: vector_field must be an nn.Module with attributes n and d_in, such as "
                f"gnode.models.GatedNODE, got {type(vector_field).__name__}"
            )
        if isinstance(d_out, bool) or not isinstance(d_out, int) or d_out < 1:
            raise ValueError(f"SequenceModel: d_out must be an integer >= 1, got {d_out!r}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"SequenceModel: interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
        if h0 not in H0_MODES:
            raise ValueError(f"SequenceModel: h0 must be one of {H0_MODES}, got {h0!r}")
        solve_kwargs = dict(solve_kwargs or {})
        allowed = set(inspect.signature(solve).parameters) - {"prob", "alg", *_SET_BY_MODEL}
        for k in solve_kwargs:
            if k in _SET_BY_MODEL or k == "alg":
                raise ValueError(f"SequenceModel: pass {k} as SequenceModel's own argument, not in solve_kwargs")
            if k not in allowed:
                raise ValueError(
                    f"SequenceModel: solve_kwargs has unknown key {k!r}; gnode.solve takes {', '.join(sorted(allowed))}"
                )
        like = next(vector_field.parameters())
        self.vector_field = vector_field
        self.readout = nn.Linear(vector_field.n, d_out, dtype=like.dtype, device=like.device)
        if h0 == "learnable":
            self.h0 = nn.Parameter(torch.zeros(vector_field.n, dtype=like.dtype, device=like.device))
        else:
            self.register_parameter("h0", None)
        self.d_out, self.interpolation, self.h0_mode = d_out, interpolation, h0
        self.alg, self.sensealg, self.engine = alg, sensealg, engine
        self.reltol, self.abstol, self.solve_kwargs = reltol, abstol, solve_kwargs

    @property
    def n(self) -> int:
        return self.vector_field.n

    @property
    def d_in(self) -> int:
        return self.vector_field.d_in

    def forward(self, x: torch.Tensor | None, times, h0: torch.Tensor | None = None) -> SequenceOutput:
        if isinstance(times, torch.Tensor) and times.ndim == 2:
            return self._forward_per_sequence(x, times, h0)
        times, x = check_sequence_inputs(self, x, times, need_x=self.d_in > 0)
        like = self.readout.weight.detach()
        batch = x.shape[0] if x is not None else (h0.shape[0] if isinstance(h0, torch.Tensor) and h0.ndim == 2 else 1)
        u0 = initial_state(self, h0, batch, self.n, self.h0, like)
        control = Control(times, x, self.interpolation) if x is not None and self.d_in > 0 else None
        prob = ODEProblem(self.vector_field, u0, (float(times[0]), float(times[-1])), inputs=control)
        sol = solve(
            prob,
            self.alg,
            saveat=times,
            reltol=self.reltol,
            abstol=self.abstol,
            sensealg=self.sensealg,
            engine=self.engine,
            **self.solve_kwargs,
        )
        return SequenceOutput(self.readout(sol.u), sol.u, sol)

    def _forward_per_sequence(self, x: torch.Tensor, times: torch.Tensor, h0) -> SequenceOutput:
        """times (B, T), one row per sequence (`gnode.models.irregular`): one solve on the union of the rows'
        times, each row's inputs resampled onto it exactly, h and y read back at each row's own times."""
        name = type(self).__name__
        if not isinstance(x, torch.Tensor) or self.d_in == 0:
            raise ValueError(f"{name}: per-sequence times (batch, T) need inputs x (batch, T, d_in)")
        steps = torch.arange(x.shape[1]) if x.ndim == 3 else times[0]  # x's own checks here, the rows' times below
        _, x = check_sequence_inputs(self, x, steps, need_x=True)
        times = times.to(dtype=x.dtype, device=x.device)
        check_sequence_times(times, x.shape[0], x.shape[1], where=name)
        grid, index = merge_times(times)
        if grid.numel() < 2:
            raise ValueError(f"{name}: the batch's sequences have a single sample time ({grid.item():.6g})")
        values = resample(times, x, grid, self.interpolation)
        u0 = initial_state(self, h0, x.shape[0], self.n, self.h0, self.readout.weight.detach())
        prob = ODEProblem(
            self.vector_field, u0, (float(grid[0]), float(grid[-1])), inputs=Control(grid, values, self.interpolation)
        )
        sol = solve(
            prob,
            self.alg,
            saveat=grid,
            reltol=self.reltol,
            abstol=self.abstol,
            sensealg=self.sensealg,
            engine=self.engine,
            **self.solve_kwargs,
        )
        h = sol.u.gather(1, index[..., None].expand(-1, -1, self.n))
        return SequenceOutput(self.readout(h), h, sol)

    def flat_entries(self) -> list[tuple[str, nn.Parameter]]:
        """The vector field's entries (prefixed "vector_field."), readout.weight, readout.bias, then h0."""
        entries = [(f"vector_field.{k}", p) for k, p in self.vector_field.flat_entries()]
        entries += [("readout.weight", self.readout.weight), ("readout.bias", self.readout.bias)]
        if self.h0 is not None:
            entries.append(("h0", self.h0))
        return entries

    def spec(self) -> dict:
        """Plain data (see `gnode.models.spec`): the vector field's spec, readout, interpolation, h0, solver."""
        plain = {k: v for k, v in self.solve_kwargs.items() if v is None or isinstance(v, (bool, int, float, str))}
        return {
            "format": "gnode.sequence_model",
            "version": SPEC_VERSION,
            "family": "SequenceModel",
            "dtype": dtype_name(self.readout.weight.dtype),
            "vector_field": self.vector_field.spec(),
            "d_out": self.d_out,
            "interpolation": self.interpolation,
            "h0": self.h0_mode,
            "solver": {
                "alg": repr(self.alg) if self.alg is not None else None,
                "sensealg": repr(self.sensealg) if self.sensealg is not None else None,
                "engine": self.engine,
                "reltol": self.reltol,
                "abstol": self.abstol,
                "solve_kwargs": plain,
                "solve_kwargs_not_exported": sorted(set(self.solve_kwargs) - set(plain)),
            },
            "parameters": self.flat_layout(),
        }
