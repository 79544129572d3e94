"""The continuous n-bit flip-flop: a memory task for continuous quantities.

Each of `channels` inputs carries sparse pulses at random times; each pulse has a continuous amplitude
(uniform in [-scale, scale] by default). Output i must hold the amplitude of the most recent pulse on
channel i until the next one arrives, and 0 before the first. The discrete version (amplitudes +-1) is
Sussillo & Barak (Neural Comput. 2013); the continuous one is the memory task of Kim, Can & Krishnamurthy
(ICML 2023, Sec. 5.2), whose solutions organise into (approximate) continuous attractors.

Timing convention. Sequences are sampled at times t_k = k * dt, k = 0..T-1, and a continuous-time model
sees the inputs as a zero-order hold: x(t) = inputs[k] on [t_k, t_{k+1}). A pulse with onset sample j
and width w samples occupies inputs[j : j + w] and is fully seen only at t_{j+w}; the target therefore
switches to its amplitude at sample j + w (a causal model cannot know an amplitude before it has seen
the pulse). After a pulse on a channel, no new pulse starts there before at least one quiet sample,
so consecutive pulses stay distinguishable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from gnode.tasks.data import SequenceSplit, TaskData

AMPLITUDES = ("uniform", "sign")


@dataclass(frozen=True)
class FlipFlopConfig:
    """How flip-flop sequences are drawn. Times are in the model's time unit (tau = 1 by default).

    channels:    number of bits n (inputs = outputs = n).
    duration:    length of each sequence, t in [0, duration].
    dt:          sampling step; T = round(duration / dt) + 1 samples.
    pulse_prob:  probability that a pulse starts on a quiet channel at a given sample.
    pulse_width: duration of a pulse, rounded to a whole number (>= 1) of samples.
    amplitude:   "uniform" (amplitude ~ U[-scale, scale], the continuous task) or "sign" (+-scale,
                 the classic discrete flip-flop).
    scale:       the largest amplitude.
    min_amplitude: with "uniform", draw |amplitude| ~ U[min_amplitude, scale] with a random sign instead.
                 A pulse of amplitude near 0 is nearly indistinguishable from no pulse, so with the default
                 0 the smallest pulses are the hardest part of the task (they must still reset the memory).
    input_noise: standard deviation of Gaussian noise added to every input sample (not to targets).
    n_train, n_val, n_test: sequences per split.
    seed:        each split is drawn from its own generator derived from `seed`, so a split does not
                 change when the size of another one does.
    """

    channels: int = 3
    duration: float = 20.0
    dt: float = 1.0
    pulse_prob: float = 0.12
    pulse_width: float = 1.0
    amplitude: str = "uniform"
    scale: float = 1.0
    min_amplitude: float = 0.0
    input_noise: float = 0.0
    n_train: int = 512
    n_val: int = 128
    n_test: int = 256
    seed: int = 0

    def __post_init__(self):
        def need(ok: bool, what: str):
            if not ok:
                raise ValueError(f"FlipFlopConfig: {what}")

        need(
            isinstance(self.channels, int) and self.channels >= 1,
            f"channels must be an integer >= 1, got {self.channels!r}",
        )
        need(_finite_pos(self.dt), f"dt must be a positive number, got {self.dt!r}")
        need(
            _finite_pos(self.duration) and self.duration >= self.dt,
            f"duration must be a number >= dt = {self.dt}, got {self.duration!r}",
        )
        need(
            isinstance(self.pulse_prob, (int, float)) and 0 <= self.pulse_prob <= 1,
            f"pulse_prob must lie in [0, 1], got {self.pulse_prob!r}",
        )
        need(_finite_pos(self.pulse_width), f"pulse_width must be a positive number, got {self.pulse_width!r}")
        need(self.amplitude in AMPLITUDES, f"amplitude must be one of {AMPLITUDES}, got {self.amplitude!r}")
        need(_finite_pos(self.scale), f"scale must be a positive number, got {self.scale!r}")
        need(
            isinstance(self.min_amplitude, (int, float)) and 0 <= self.min_amplitude < self.scale,
            f"min_amplitude must lie in [0, scale = {self.scale}), got {self.min_amplitude!r}",
        )
        need(
            isinstance(self.input_noise, (int, float)) and math.isfinite(self.input_noise) and self.input_noise >= 0,
            f"input_noise must be a number >= 0, got {self.input_noise!r}",
        )
        for name in ("n_train", "n_val", "n_test"):
            v = getattr(self, name)
            need(isinstance(v, int) and v >= 1, f"{name} must be an integer >= 1, got {v!r}")
        need(isinstance(self.seed, int), f"seed must be an integer, got {self.seed!r}")

    @property
    def steps(self) -> int:
        """T, the number of samples per sequence."""
        return round(self.duration / self.dt) + 1

    @property
    def width_steps(self) -> int:
        """Pulse width in samples (>= 1)."""
        return max(1, round(self.pulse_width / self.dt))

    def times(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.arange(self.steps, dtype=torch.float64).mul(self.dt).to(dtype or torch.get_default_dtype())


def _finite_pos(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def render_inputs(onsets: torch.Tensor, amplitudes: torch.Tensor, width: int) -> torch.Tensor:
    """Pulse trains (B, T, n): each onset (a True in `onsets` (B, T, n)) writes its amplitude into the
    `width` samples starting there (clipped at the end of the sequence)."""
    _check_events(onsets, amplitudes, width)
    out = torch.zeros(amplitudes.shape, dtype=amplitudes.dtype, device=amplitudes.device)
    events = torch.where(onsets, amplitudes, torch.zeros_like(amplitudes))
    steps = onsets.shape[1]
    for j in range(width):  # a shifted copy per sample of the pulse; pulses on a channel never overlap
        out[:, j:] += events[:, : steps - j]
    return out


def flipflop_targets(onsets: torch.Tensor, amplitudes: torch.Tensor, width: int) -> torch.Tensor:
    """Targets (B, T, n): at sample k, the amplitude of the latest pulse on each channel that ended by
    sample k (onset j with j + width <= k), else 0."""
    _check_events(onsets, amplitudes, width)
    b, steps, n = onsets.shape
    held = torch.zeros(b, n, dtype=amplitudes.dtype, device=amplitudes.device)
    out = torch.empty_like(amplitudes)
    for k in range(steps):
        j = k - width
        if j >= 0:
            held = torch.where(onsets[:, j], amplitudes[:, j], held)
        out[:, k] = held
    return out


def _check_events(onsets: torch.Tensor, amplitudes: torch.Tensor, width: int) -> None:
    if onsets.dtype != torch.bool:
        raise TypeError(f"onsets must be a bool tensor (B, T, n), got dtype {onsets.dtype}")
    if onsets.ndim != 3 or onsets.shape != amplitudes.shape:
        raise ValueError(
            f"onsets {tuple(onsets.shape)} and amplitudes {tuple(amplitudes.shape)} must both be (batch, T, channels)"
        )
    if not (isinstance(width, int) and width >= 1):
        raise ValueError(f"width must be an integer >= 1 (samples), got {width!r}")


def sample_onsets(batch: int, config: FlipFlopConfig, generator: torch.Generator) -> torch.Tensor:
    """Pulse onsets (batch, T, n): Bernoulli(pulse_prob) at each sample of a quiet channel, where a channel
    is quiet from one sample after its last pulse ended (onset j blocks samples j .. j + width)."""
    steps, n, w = config.steps, config.channels, config.width_steps
    draws = torch.rand(batch, steps, n, generator=generator, dtype=torch.float64) < config.pulse_prob
    onsets = torch.zeros(batch, steps, n, dtype=torch.bool)
    free_from = torch.zeros(batch, n, dtype=torch.long)  # first sample at which a new pulse may start
    for k in range(steps):
        start = draws[:, k] & (free_from <= k)
        onsets[:, k] = start
        free_from = torch.where(start, torch.full_like(free_from, k + w + 1), free_from)
    return onsets


def sample_amplitudes(batch: int, config: FlipFlopConfig, generator: torch.Generator) -> torch.Tensor:
    shape = (batch, config.steps, config.channels)
    u = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1  # U[-1, 1]
    if config.amplitude == "sign":
        return torch.where(u < 0, -config.scale, config.scale)
    lo = config.min_amplitude
    return torch.sign(u) * (lo + (config.scale - lo) * u.abs())  # = scale * u when lo = 0


def make_split(
    batch: int, config: FlipFlopConfig, generator: torch.Generator, dtype: torch.dtype | None = None
) -> SequenceSplit:
    """`batch` flip-flop sequences drawn with `generator` (in float64, then cast to `dtype`)."""
    dtype = dtype or torch.get_default_dtype()
    onsets = sample_onsets(batch, config, generator)
    amplitudes = sample_amplitudes(batch, config, generator)
    inputs = render_inputs(onsets, amplitudes, config.width_steps)
    targets = flipflop_targets(onsets, amplitudes, config.width_steps)
    if config.input_noise > 0:
        inputs = inputs + config.input_noise * torch.randn(inputs.shape, generator=generator, dtype=torch.float64)
    return SequenceSplit(config.times(dtype), inputs.to(dtype), targets.to(dtype))


def make_flipflop(config: FlipFlopConfig | None = None, *, dtype: torch.dtype | None = None) -> TaskData:
    """Train/val/test splits of the continuous flip-flop (see the module docstring for the convention).

    >>> data = make_flipflop(FlipFlopConfig(channels=3, seed=1))
    >>> data.train.inputs.shape   # (n_train, T, channels)
    """
    config = config or FlipFlopConfig()
    root = torch.Generator().manual_seed(config.seed)
    seeds = torch.randint(0, 2**62, (3,), generator=root).tolist()
    splits = {}
    for name, seed in zip(("train", "val", "test"), seeds):
        splits[name] = make_split(getattr(config, f"n_{name}"), config, torch.Generator().manual_seed(seed), dtype)
    meta = {
        "task": "flipflop",
        "config": asdict(config),
        "steps": config.steps,
        "width_steps": config.width_steps,
        "target_variance_test": splits["test"].target_variance(),
    }
    return TaskData(**splits, meta=meta)
