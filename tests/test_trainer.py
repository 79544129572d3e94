"""The trainer, on small stand-in models (no ODE solver needed): learning, metrics, exact resumption,
interruption, early stopping and divergence."""

import json
import math
import os
import signal
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from gnode.solution import SolveStats
from gnode.tasks import FlipFlopConfig, make_flipflop
from gnode.training import CheckpointError, TrainConfig, Trainer, TrainingDiverged, load_checkpoint


class TinyRNN(nn.Module):
    """A stand-in sequence model: forward(x (B,T,d), times (T,)) -> (B,T,d)."""

    def __init__(self, d=2, hidden=8, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.rnn = nn.RNN(d, hidden, batch_first=True)
        self.out = nn.Linear(hidden, d)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x, times):
        return self.out(self.rnn(x)[0])


class FakeODEModel(TinyRNN):
    """Returns a result object like SequenceModel's, with solver statistics that depend on the batch."""

    def forward(self, x, times):
        b = x.shape[0]
        stats = SolveStats.zeros(b)
        stats.nf += 10 + torch.arange(b)  # mean nf over a batch of b: 10 + (b-1)/2
        return SimpleNamespace(y=super().forward(x, times), h=None, sol=SimpleNamespace(stats=stats))


def tiny_data(seed=0, n_train=48):
    cfg = FlipFlopConfig(
        channels=2, duration=4.0, dt=0.25, pulse_prob=0.15, n_train=n_train, n_val=16, n_test=16, seed=seed
    )
    return make_flipflop(cfg)


def quiet(**kw):
    base = {"epochs": 4, "batch_size": 16, "lr": 1e-2, "progress": False, "checkpoint_every": 1}
    base.update(kw)
    return TrainConfig(**base)


def test_training_decreases_the_loss_and_writes_metrics(tmp_path):
    data = tiny_data()
    model = TinyRNN()
    before = Trainer(model, data, quiet()).evaluate("val")["loss"]
    result = Trainer(model, data, quiet(epochs=15, lr=2e-2), tmp_path).fit()
    assert result.status == "finished"
    losses = [r["train_loss"] for r in result.history]
    assert len(losses) == 15 and losses[-1] < 0.7 * losses[0]
    assert result.summary["val_mse"] < 0.8 * before
    # metrics on disk agree with what fit returned
    rows = json.loads((tmp_path / "history.json").read_text())
    assert [r["train_loss"] for r in rows] == pytest.approx(losses)
    csv_lines = (tmp_path / "history.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,train_loss,lr") and len(csv_lines) == 16
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["test_mse"] == pytest.approx(result.summary["test_mse"])
    assert summary["n_params"] == sum(p.numel() for p in model.parameters())
    assert summary["target_variance_test"] == pytest.approx(data.test.target_variance())
    # the cosine schedule ends near lr * lr_min
    assert rows[-1]["lr"] < 0.1 * 2e-2


def test_test_mse_is_that_of_the_best_validation_weights(tmp_path):
    data = tiny_data()
    model = TinyRNN()
    tr = Trainer(model, data, quiet(epochs=6), tmp_path)
    result = tr.fit()
    best = min(r["val_loss"] for r in result.history)
    assert result.summary["val_mse"] == pytest.approx(best, rel=1e-6)
    assert result.summary["best_epoch"] == 1 + [r["val_loss"] for r in result.history].index(best)
    # the model now holds the best weights: its test MSE is the summary's
    assert tr.evaluate("test")["loss"] == pytest.approx(result.summary["test_mse"])


def test_solver_statistics_are_logged_per_trajectory():
    data = tiny_data(n_train=32)
    result = Trainer(FakeODEModel(), data, quiet(epochs=1, batch_size=16)).fit()
    assert result.history[0]["train_nf"] == pytest.approx(10 + 7.5)  # mean over a batch of 16
    assert result.history[0]["val_nf"] == pytest.approx(10 + 7.5)  # the 16 validation sequences in one batch
    assert result.summary["test_nf"] == pytest.approx(17.5)


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("stop_at", [5, 6])  # mid-epoch (3 batches per epoch) and on an epoch boundary
def test_resume_after_stop_reproduces_the_uninterrupted_run_exactly(tmp_path, stop_at):
    data = tiny_data()
    cfg = quiet(epochs=4, seed=11)
    full_model = TinyRNN(seed=1)
    full = Trainer(full_model, data, cfg, tmp_path / "full").fit()

    def stop(tr):
        if tr.progress.global_step == stop_at:
            tr.request_stop()

    first = Trainer(TinyRNN(seed=1), data, cfg, tmp_path / "cut", on_step=stop)
    assert first.fit().status == "stopped"
    saved = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert saved["progress"]["global_step"] == stop_at

    resumed_model = TinyRNN(seed=5)  # different initial weights: everything must come from the checkpoint
    resumed = Trainer(resumed_model, data, cfg, tmp_path / "cut").fit(resume=True)
    assert resumed.status == "finished"
    for a, b in zip(_params(full_model), _params(resumed_model)):
        assert torch.equal(a, b)
    last_full = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["model"]
    last_cut = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["model"]
    assert all(torch.equal(last_full[k], last_cut[k]) for k in last_full)
    assert [r["train_loss"] for r in full.history] == [r["train_loss"] for r in resumed.history]
    assert [r["val_loss"] for r in full.history] == [r["val_loss"] for r in resumed.history]
    assert resumed.summary["test_mse"] == full.summary["test_mse"]


def test_resume_from_a_periodic_checkpoint_after_a_crash(tmp_path):
    """A run killed hard (no chance to save) resumes from its last periodic checkpoint."""
    data = tiny_data()
    cfg = quiet(epochs=4, checkpoint_every=2, lr_schedule="plateau")
    ref_model = TinyRNN()
    Trainer(ref_model, data, cfg, tmp_path / "ref").fit()

    class Crash(Exception):
        pass

    def crash(tr):
        if tr.progress.global_step == 10:  # in epoch 4; the last checkpoint is from the end of epoch 2
            raise Crash

    with pytest.raises(Crash):
        Trainer(TinyRNN(), data, cfg, tmp_path / "crash", on_step=crash).fit()
    assert load_checkpoint(tmp_path / "crash" / "checkpoint.pt")["progress"]["epoch"] == 2
    model = TinyRNN(seed=3)
    Trainer(model, data, cfg, tmp_path / "crash").fit(resume=True)
    assert all(torch.equal(a, b) for a, b in zip(_params(ref_model), _params(model)))


def test_ctrl_c_saves_a_checkpoint_and_raises_keyboard_interrupt(tmp_path):
    data = tiny_data()
    cfg = quiet(epochs=4, checkpoint_every=0)

    def ctrl_c(tr):
        if tr.progress.global_step == 4:
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        Trainer(TinyRNN(), data, cfg, tmp_path, on_step=ctrl_c).fit()
    assert signal.getsignal(signal.SIGINT) is previous  # the handler is gone again
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["progress"]["global_step"] == 4 and state["progress"]["status"] == "running"
    ref = TinyRNN()
    Trainer(ref, data, cfg, tmp_path / "ref").fit()
    model = TinyRNN(seed=9)
    Trainer(model, data, cfg, tmp_path).fit(resume=True)
    assert all(torch.equal(a, b) for a, b in zip(_params(ref), _params(model)))


def test_resume_rejects_other_settings_and_missing_checkpoints(tmp_path):
    data = tiny_data()
    Trainer(TinyRNN(), data, quiet(epochs=1), tmp_path).fit()
    with pytest.raises(ValueError, match="lr: saved 0.01, now 0.02"):
        Trainer(TinyRNN(), data, quiet(epochs=1, lr=0.02), tmp_path).fit(resume=True)
    with pytest.raises(ValueError, match="does not fit this model"):
        Trainer(TinyRNN(hidden=5), data, quiet(epochs=1), tmp_path).fit(resume=True)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        Trainer(TinyRNN(), data, quiet(), tmp_path / "empty").fit(resume=True)
    with pytest.raises(ValueError, match="already holds a checkpoint"):  # never overwritten by a fresh run
        Trainer(TinyRNN(), data, quiet(epochs=1), tmp_path).fit()


def test_resuming_a_finished_run_returns_its_summary_without_training(tmp_path):
    data = tiny_data()
    first = Trainer(TinyRNN(), data, quiet(epochs=2), tmp_path).fit()
    model = TinyRNN(seed=4)
    again = Trainer(model, data, quiet(epochs=2), tmp_path).fit(resume=True)
    assert again.status == "finished" and again.summary["test_mse"] == first.summary["test_mse"]
    assert len(again.history) == 2


def test_early_stopping_stops_after_patience_validations_without_improvement():
    data = tiny_data()
    # lr so small that the loss cannot improve by min_delta: the first validation sets the best, then
    # `patience` more without improvement stop the run
    result = Trainer(TinyRNN(), data, quiet(epochs=50, lr=1e-9, patience=3, min_delta=1.0)).fit()
    assert result.status == "early_stopping"
    assert len(result.history) == 1 + 3 and result.summary["best_epoch"] == 1


def test_divergence_raises_a_clear_error_and_keeps_the_last_good_state(tmp_path):
    data = tiny_data()

    class Exploding(TinyRNN):
        calls = 0

        def forward(self, x, times):
            Exploding.calls += 1
            y = super().forward(x, times)
            return y * math.inf if Exploding.calls == 3 else y

    model = Exploding()
    with pytest.raises(TrainingDiverged, match="epoch 1, step 3.*lower lr"):
        Trainer(model, data, quiet(), tmp_path).fit()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["progress"]["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_a_finite_loss_far_above_its_start_is_divergence_too(tmp_path):
    data = tiny_data()

    class Blowing(TinyRNN):
        """The loss of the third batch is ~1e6 times the others' but finite (as a too-high lr gives)."""

        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x, times):
            self.calls += 1
            y = super().forward(x, times)
            return y * 1e3 if self.calls == 3 else y

    with pytest.raises(TrainingDiverged, match=r"grew to .*times the first batch's .*epoch 1, step 3.*lower lr"):
        Trainer(Blowing(), data, quiet(), tmp_path).fit()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["progress"]["global_step"] == 2 and state["progress"]["first_loss"] > 0
    # the factor is a setting: off (None), only a non-finite loss stops the run
    result = Trainer(Blowing(), data, quiet(epochs=1, divergence_factor=None)).fit()
    assert result.status == "finished"
    with pytest.raises(ValueError, match="divergence_factor must be a number > 1"):
        quiet(divergence_factor=1.0)


def test_gradient_clipping_bounds_the_gradient_each_step_and_logs_the_raw_norm():
    data = tiny_data()
    seen = []

    def grad_norm(tr):  # the gradients the optimiser just used are still in .grad
        seen.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in tr.model.parameters()]))))

    clipped = Trainer(TinyRNN(), data, quiet(epochs=1, grad_clip=1e-3), on_step=grad_norm).fit()
    assert len(seen) == 3 and max(seen) <= 1e-3 * (1 + 1e-5)
    assert clipped.history[0]["grad_norm"] > 1e-2  # the logged norm is the one before clipping
    seen.clear()
    Trainer(TinyRNN(), data, quiet(epochs=1, grad_clip=None), on_step=grad_norm).fit()
    assert seen[0] > 1e-2


def test_bad_config_and_model_are_rejected():
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(TypeError, match="nn.Module"):
        Trainer(lambda x, t: x, tiny_data())
