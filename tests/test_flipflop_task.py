"""The flip-flop task generator: targets on hand-made pulse trains, the statistics of drawn sequences, seeding."""

import math

import pytest
import torch

from gnode.tasks import FlipFlopConfig, flipflop_targets, make_flipflop, render_inputs
from gnode.tasks.flipflop import sample_onsets


def _events(steps, n, pulses):
    """onsets/amplitudes (1, steps, n) from a list of (sample, channel, amplitude)."""
    onsets = torch.zeros(1, steps, n, dtype=torch.bool)
    amps = torch.zeros(1, steps, n, dtype=torch.float64)
    for k, i, a in pulses:
        onsets[0, k, i] = True
        amps[0, k, i] = a
    return onsets, amps


def test_targets_hold_the_latest_pulse_amplitude_from_the_end_of_the_pulse():
    # channel 0: pulses 0.5 at sample 1 and -0.3 at sample 5; channel 1: one pulse 0.9 at sample 6; width 2
    onsets, amps = _events(10, 2, [(1, 0, 0.5), (5, 0, -0.3), (6, 1, 0.9)])
    y = flipflop_targets(onsets, amps, width=2)[0]
    assert y[:, 0].tolist() == [0, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.3, -0.3, -0.3]
    assert y[:, 1].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 0.9, 0.9]


def test_pulse_that_ends_after_the_last_sample_never_reaches_the_target():
    onsets, amps = _events(6, 1, [(1, 0, 0.7), (4, 0, -0.2)])
    y = flipflop_targets(onsets, amps, width=3)[0, :, 0]
    assert y.tolist() == [0, 0, 0, 0, 0.7, 0.7]  # the pulse at 4 would land at sample 7


def test_inputs_carry_each_amplitude_for_width_samples():
    onsets, amps = _events(8, 2, [(0, 1, -1.0), (3, 0, 0.25), (6, 0, 0.5)])
    x = render_inputs(onsets, amps, width=3)[0]
    assert x[:, 0].tolist() == [0, 0, 0, 0.25, 0.25, 0.25, 0.5, 0.5]  # clipped at the end
    assert x[:, 1].tolist() == [-1, -1, -1, 0, 0, 0, 0, 0]


def test_drawn_sequences_are_consistent_with_the_rule():
    """On random data, rebuild targets from the inputs by scanning for pulse ends."""
    cfg = FlipFlopConfig(
        channels=3, duration=10.0, dt=0.5, pulse_prob=0.2, pulse_width=1.0, n_train=64, n_val=2, n_test=2, seed=3
    )
    d = make_flipflop(cfg, dtype=torch.float64)
    x, y, w = d.train.inputs, d.train.targets, cfg.width_steps
    assert w == 2 and x.shape == (64, cfg.steps, 3) and cfg.steps == 21
    for b in range(8):
        for i in range(3):
            held, k = 0.0, 0
            expect = [0.0] * cfg.steps
            while k < cfg.steps:
                if x[b, k, i] != 0:  # a pulse starts: it lasts w samples, then at least one quiet sample
                    a = float(x[b, k, i])
                    assert all(float(v) == a for v in x[b, k : k + w, i])
                    if k + w < cfg.steps:
                        assert x[b, k + w, i] == 0
                        held = a
                        expect[k + w] = held
                        for kk in range(k + w, cfg.steps):
                            expect[kk] = held
                    k += w
                else:
                    k += 1
            # expect was filled forward from each landing; compare where it is defined
            assert torch.allclose(y[b, :, i], torch.tensor(expect, dtype=y.dtype))


def test_sequence_statistics_match_the_configuration():
    cfg = FlipFlopConfig(
        channels=2, duration=50.0, dt=0.5, pulse_prob=0.1, pulse_width=0.5, n_train=400, n_val=1, n_test=1
    )
    onsets = sample_onsets(400, cfg, torch.Generator().manual_seed(0))
    # after an onset the channel is blocked for `width` more samples (the rest of the pulse and one quiet
    # sample), so by a renewal argument (mean cycle w + 1/p samples) the onset rate per sample is p / (1 + w p)
    rate = onsets.double().mean().item()
    p, w = cfg.pulse_prob, cfg.width_steps
    assert w == 1
    assert rate == pytest.approx(p / (1 + w * p), rel=0.03)
    d = make_flipflop(cfg)
    amps = d.train.inputs[d.train.inputs != 0]
    assert amps.abs().max() <= 1.0 and amps.mean().abs() < 0.05
    assert amps.var().item() == pytest.approx(1 / 3, rel=0.1)  # U[-1, 1]


def test_min_amplitude_keeps_pulses_away_from_zero():
    cfg = FlipFlopConfig(min_amplitude=0.25, n_train=200, n_val=1, n_test=1)
    amps = make_flipflop(cfg, dtype=torch.float64).train.inputs
    amps = amps[amps != 0]
    assert amps.abs().min() >= 0.25 and amps.abs().max() <= 1.0
    assert (amps > 0).double().mean().item() == pytest.approx(0.5, abs=0.05)
    assert amps.abs().mean().item() == pytest.approx(0.625, abs=0.02)  # |a| ~ U[0.25, 1]
    with pytest.raises(ValueError, match="min_amplitude"):
        FlipFlopConfig(min_amplitude=1.0)


def test_sign_amplitudes_and_noise():
    cfg = FlipFlopConfig(amplitude="sign", scale=2.0, n_train=16, n_val=1, n_test=1)
    x = make_flipflop(cfg).train.inputs
    assert set(x.unique().tolist()) == {-2.0, 0.0, 2.0}
    noisy = make_flipflop(FlipFlopConfig(amplitude="sign", scale=2.0, n_train=16, n_val=1, n_test=1, input_noise=0.1))
    diff = noisy.train.inputs - x
    assert diff.std().item() == pytest.approx(0.1, rel=0.1)
    assert torch.equal(noisy.train.targets, make_flipflop(cfg).train.targets)  # noise never reaches targets


def test_seeding_is_reproducible_and_splits_are_independent_of_other_sizes():
    a = make_flipflop(FlipFlopConfig(n_train=32, n_val=8, n_test=8, seed=5))
    b = make_flipflop(FlipFlopConfig(n_train=32, n_val=8, n_test=8, seed=5))
    c = make_flipflop(FlipFlopConfig(n_train=64, n_val=8, n_test=8, seed=5))
    e = make_flipflop(FlipFlopConfig(n_train=32, n_val=8, n_test=8, seed=6))
    assert torch.equal(a.train.inputs, b.train.inputs) and torch.equal(a.test.targets, b.test.targets)
    assert torch.equal(a.test.inputs, c.test.inputs)  # growing train leaves test alone
    assert not torch.equal(a.train.inputs, e.train.inputs)
    assert not torch.equal(a.train.inputs[:8], a.val.inputs)
    assert a.meta["target_variance_test"] == pytest.approx(a.test.target_variance())


def test_times_and_dtype():
    cfg = FlipFlopConfig(duration=2.0, dt=0.25, n_train=2, n_val=1, n_test=1)
    d = make_flipflop(cfg, dtype=torch.float64)
    assert d.train.times.dtype == torch.float64 and d.train.inputs.dtype == torch.float64
    assert torch.allclose(d.train.times, torch.linspace(0, 2, 9, dtype=torch.float64))
    assert d.d_in == d.d_out == 3


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"channels": 0}, "channels"),
        ({"dt": -1.0}, "dt"),
        ({"duration": 0.1, "dt": 0.5}, "duration"),
        ({"pulse_prob": 1.5}, "pulse_prob"),
        ({"amplitude": "gauss"}, "amplitude"),
        ({"input_noise": math.nan}, "input_noise"),
        ({"n_test": 0}, "n_test"),
    ],
)
def test_bad_configuration_names_the_field(kwargs, word):
    with pytest.raises(ValueError, match=word):
        FlipFlopConfig(**kwargs)
