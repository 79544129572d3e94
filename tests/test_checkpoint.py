"""Checkpoint files: atomic writes, round trips, and clear errors for missing or damaged files."""

import os

import pytest
import torch

from gnode.training import checkpoint as ck
from gnode.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def _state(scale=1.0):
    return {
        "model": {"w": torch.arange(200, dtype=torch.float64) * scale},
        "optimizer": {"state": {}},
        "scheduler": {"last_epoch": 3},
        "rng": {"g": torch.Generator().manual_seed(1).get_state()},
        "progress": {"epoch": 3, "perm": [2, 0, 1]},
        "config": {"train": {"lr": 0.01}, "run": {}},
    }


def test_round_trip(tmp_path):
    save_checkpoint(tmp_path / "c.pt", _state())
    back = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(back["model"]["w"], _state()["model"]["w"])
    assert back["progress"] == {"epoch": 3, "perm": [2, 0, 1]} and back["version"] == ck.VERSION
    assert torch.equal(back["rng"]["g"], _state()["rng"]["g"])
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary files left behind


def test_failed_write_keeps_the_old_checkpoint_and_leaves_no_debris(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, _state(1.0))

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(ck.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _state(2.0))
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], _state(1.0)["model"]["w"])
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_missing_file_says_so(tmp_path):
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*nothere\.pt.*fresh run"):
        load_checkpoint(tmp_path / "nothere.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_truncated_or_garbage_files_give_a_clear_error(tmp_path, damage):
    path = tmp_path / "c.pt"
    save_checkpoint(path, _state())
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(len(data)), "empty": b""}[damage])
    with pytest.raises(CheckpointError, match=r"c\.pt is unreadable \(truncated or corrupted\?\)"):
        load_checkpoint(path)


def test_a_flipped_bit_in_tensor_data_is_caught(tmp_path):
    """torch.load alone would return silently wrong numbers here; the CRC check catches it."""
    path = tmp_path / "c.pt"
    save_checkpoint(path, _state())
    data = bytearray(path.read_bytes())
    needle = (torch.arange(200, dtype=torch.float64)[150]).numpy().tobytes()
    i = bytes(data).index(needle)
    data[i + 3] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="CRC"):
        load_checkpoint(path)


def test_other_torch_files_are_not_mistaken_for_checkpoints(tmp_path):
    torch.save({"model": {}}, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="not a gnode training checkpoint"):
        load_checkpoint(tmp_path / "weights.pt")
    torch.save({"format": ck.FORMAT, "version": ck.VERSION, "model": {}}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="incomplete.*optimizer"):
        load_checkpoint(tmp_path / "partial.pt")
    torch.save({**_state(), "format": ck.FORMAT, "version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(tmp_path / "future.pt")


def test_saving_an_incomplete_state_is_refused(tmp_path):
    with pytest.raises(ValueError, match="lacks"):
        save_checkpoint(tmp_path / "c.pt", {"model": {}})
