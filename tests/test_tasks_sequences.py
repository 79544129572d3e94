"""Variable-length, irregularly sampled sequences: padding, masks, resampling onto a merged grid, time gaps,
standardisation from the training split, class labels and NaN reports (gnode.tasks.sequences,
gnode.models.irregular)."""

import numpy as np
import pytest
import torch

from gnode import Control
from gnode.models import DiscreteGRU, GatedNODE, SequenceModel, from_spec
from gnode.models.irregular import check_sequence_times, merge_times, resample, time_gaps
from gnode.tasks.sequences import (
    DataFormatError,
    Labels,
    Standardization,
    check_finite,
    classification_split,
    regression_split,
    stratified_holdout,
)
from gnode.training.task_runs import class_cross_entropy


def _irregular(rng, lengths, d):
    times = [np.concatenate([[0.0], np.cumsum(rng.uniform(0.3, 1.5, size=n - 1))]) for n in lengths]
    return times, [rng.standard_normal((n, d)) for n in lengths]


@pytest.mark.parametrize("interpolation", ["zoh", "linear"])
def test_resampled_control_equals_each_sequences_own_control(interpolation):
    rng = np.random.default_rng(0)
    times, xs = _irregular(rng, [5, 3, 7], 2)
    split = regression_split(times, xs, xs, dtype=torch.float64)
    grid, index = merge_times(split.times)
    assert torch.equal(grid[index], split.times)
    on_grid = Control(grid, resample(split.times, split.inputs, grid, interpolation), interpolation)
    probe = torch.linspace(0, float(grid[-1]), 301, dtype=torch.float64)
    for b, (t, x) in enumerate(zip(times, xs)):
        own = Control(torch.as_tensor(t), torch.as_tensor(x)[None], interpolation)
        rows = torch.full_like(probe, b, dtype=torch.long)
        want = own.evaluate(probe, rows=torch.zeros_like(rows))
        got = on_grid.evaluate(probe, rows=rows)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_cubic_interpolation_is_refused_for_per_sequence_times():
    t = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.5, 2.0]])
    with pytest.raises(ValueError, match="'zoh' or 'linear'"):
        resample(t, torch.zeros(2, 3, 1), merge_times(t)[0], "cubic")


@pytest.mark.parametrize(
    ("times", "match"),
    [
        ([[0.0, 2.0, 1.0]], "decrease at index 2"),
        ([[0.0, 1.0, 1.0, 2.0]], "repeats a time before index 3"),
        ([[0.0, 1.0, 2.0], [0.5, 1.0, 2.0]], "sequence 1 starts at t = 0.5"),
        ([[0.0, float("nan"), 2.0]], r"times\[0, 1\] = nan"),
    ],
)
def test_bad_per_sequence_times_are_named(times, match):
    t = torch.tensor(times)
    with pytest.raises(ValueError, match=match):
        check_sequence_times(t, t.shape[0], t.shape[1], where="test")


def test_time_gap_channel_is_the_gap_to_the_next_sample_and_zero_over_padding():
    t = torch.tensor([[0.0, 1.0, 3.0, 3.0], [0.0, 2.0, 2.5, 4.0]])
    assert time_gaps(t)[..., 0].tolist() == [[1.0, 2.0, 0.0, 0.0], [2.0, 0.5, 1.5, 0.0]]


def _models(d_in, d_out):
    torch.manual_seed(0)
    ode = SequenceModel(
        GatedNODE(4, d_in, depth_F=2, width_F=[8], dtype=torch.float64), d_out, reltol=1e-7, abstol=1e-9
    )
    gru = DiscreteGRU(5, d_in, d_out, time_gaps=True, dtype=torch.float64)
    return {"gnode": ode, "gru": gru}


@pytest.mark.parametrize("kind", ["gnode", "gru"])
@torch.no_grad()
def test_padded_classification_batch_gives_the_loss_of_the_single_sequences(kind):
    rng = np.random.default_rng(1)
    lengths, d, classes = [5, 2, 7, 3], 3, 3
    series = [rng.standard_normal((n, d)) for n in lengths]
    labels = np.array([0, 2, 1, 2])
    model = _models(d, classes)[kind]
    batch = classification_split(series, labels, dt=0.5, dtype=torch.float64)
    assert batch.times.shape == (4, 8) and batch.mask.sum(1).tolist() == [1, 1, 1, 1]
    logits, y = batch.observed(model(batch.inputs, batch.times).y)
    singles = []
    for s, c in zip(series, labels):
        one = classification_split([s], np.array([c]), dt=0.5, dtype=torch.float64)
        assert one.times.ndim == 2 and one.times.shape[1] == len(s) + 1  # no padding of its own
        singles.append(one.observed(model(one.inputs, one.times[0]).y)[0])
    torch.testing.assert_close(logits, torch.cat(singles), rtol=1e-5, atol=1e-6)  # solver tolerance 1e-7
    single_losses = torch.stack(
        [
            class_cross_entropy(p[None], torch.tensor([[float(c)]], dtype=torch.float64))
            for p, c in zip(torch.cat(singles), labels)
        ]
    )
    torch.testing.assert_close(class_cross_entropy(logits, y), single_losses.mean(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["gnode", "gru"])
@torch.no_grad()
def test_padded_irregular_regression_batch_gives_the_mse_of_the_single_sequences(kind):
    rng = np.random.default_rng(2)
    times, xs = _irregular(rng, [6, 3, 4], 2)
    ys = [rng.standard_normal((len(t), 2)) for t in times]
    model = _models(2, 2)[kind]
    batch = regression_split(times, xs, ys, dtype=torch.float64)
    pred, target = batch.observed(model(batch.inputs, batch.times).y)
    sq, count = 0.0, 0
    for t, x, y in zip(times, xs, ys):
        out = model(torch.as_tensor(x)[None], torch.as_tensor(t)).y[0, 1:]  # the loss reads samples 1 .. L-1
        sq += float((out - torch.as_tensor(y)[1:]).pow(2).sum())
        count += out.numel()
    assert pred.shape == (5 + 2 + 3, 2)
    torch.testing.assert_close(torch.nn.functional.mse_loss(pred, target).item(), sq / count, rtol=1e-5, atol=0)


def test_discrete_baseline_with_time_gaps_round_trips_through_its_spec():
    gru = DiscreteGRU(3, 2, 2, time_gaps=True, dtype=torch.float64)
    again = from_spec(gru.spec(), gru.flat_parameters())
    x, t = torch.randn(2, 5, 2, dtype=torch.float64), torch.tensor([[0.0, 1, 3, 4, 4], [0, 2, 3, 5, 6]])
    assert again.time_gaps and again.rnn.input_size == 3
    torch.testing.assert_close(again(x, t).y, gru(x, t).y, rtol=0, atol=0)


def test_stratified_holdout_takes_each_class_in_proportion_and_is_seeded():
    labels = np.repeat(np.arange(3), [10, 20, 5])
    keep, held = stratified_holdout(labels, 0.2, seed=3)
    assert np.bincount(labels[held]).tolist() == [2, 4, 1]
    assert sorted(np.concatenate([keep, held]).tolist()) == list(range(35))
    assert np.array_equal(held, stratified_holdout(labels, 0.2, seed=3)[1])
    assert not np.array_equal(held, stratified_holdout(labels, 0.2, seed=4)[1])


def test_standardization_uses_only_the_series_it_is_fitted_on():
    rng = np.random.default_rng(4)
    train = [rng.normal(3.0, 2.0, size=(n, 2)) for n in (5, 8, 13)]
    stats = Standardization.fit(train)
    flat = np.concatenate(train)
    np.testing.assert_allclose(stats.mean, flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, flat.std(0), rtol=1e-12)
    scaled = np.concatenate([stats.apply(s) for s in train])
    np.testing.assert_allclose(scaled.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(scaled.std(0), 1, rtol=1e-12)
    assert Standardization.fit([np.ones((4, 1))]).std == (1.0,)  # a constant channel passes through


def test_labels_unseen_in_training_are_an_error_naming_them():
    labels = Labels(("a", "b"))
    assert labels.encode(["b", "a", "b"], where="x").tolist() == [1, 0, 1]
    with pytest.raises(DataFormatError, match=r"test split: class label\(s\) \['c'\] do not occur"):
        labels.encode(["a", "c"], where="test split")


def test_nan_in_the_data_is_reported_with_its_location():
    series = [np.zeros((4, 3)), np.zeros((6, 3))]
    series[1][2, 1] = np.nan
    series[1][5, 0] = np.inf
    with pytest.raises(DataFormatError, match=r"nan in sequence 1, time index 2, channel 1 \(vy\); 2 non-finite"):
        check_finite(series, where="train.ts", channel_names=["vx", "vy", "f"])
