"""The Speech Commands loader on a small generated folder of synthetic WAVs in the dataset's real layout."""

import numpy as np
import pytest
import torch

sf = pytest.importorskip("soundfile", reason="Speech Commands audio is read with soundfile (pip install soundfile)")

from gnode.tasks.sequences import DataFormatError
from gnode.tasks.speechcommands import SpeechCommandsConfig, list_utterances, make_speechcommands, mfcc

WORDS = {"yes": 440.0, "no": 880.0, "up": 1760.0}


def make_folder(root, per_word=5, rate=16_000):
    """DIR/<word>/<speaker>_nohash_<n>.wav tones, DIR/_background_noise_/, and the two list files: utterance 0 of
    each word is for validation, 1 for test."""
    rng = np.random.default_rng(0)
    val, test = [], []
    for word, hz in WORDS.items():
        (root / word).mkdir(parents=True)
        for i in range(per_word):
            n = rate - 1600 * (i % 3)  # some clips are shorter than a second, as in the real data
            t = np.arange(n) / rate
            audio = 0.3 * np.sin(2 * np.pi * hz * (1 + 0.02 * i) * t) + 0.01 * rng.standard_normal(n)
            name = f"{word}/{i:08x}_nohash_0.wav"
            sf.write(root / name, audio.astype(np.float32), rate, subtype="PCM_16")
            (val if i == 0 else test if i == 1 else []).append(name)
    (root / "_background_noise_").mkdir()
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    return root


def config(root, **kw):
    return SpeechCommandsConfig(data=str(root), words=tuple(WORDS), **kw)


def test_splits_follow_the_dataset_lists(tmp_path):
    root = make_folder(tmp_path / "sc")
    files = list_utterances(config(root))
    assert files["val"] == ["yes/00000000_nohash_0.wav", "no/00000000_nohash_0.wav", "up/00000000_nohash_0.wav"]
    assert len(files["test"]) == 3 and len(files["train"]) == 9


def _librosa():
    return pytest.importorskip("librosa", reason="Speech Commands MFCCs come from librosa (pip install librosa)")


@pytest.mark.slow  # librosa's first call loads numba-compiled code: ~10 s
def test_mfcc_features_match_librosa_with_the_neural_cde_settings(tmp_path):
    librosa = _librosa()
    root = make_folder(tmp_path / "sc")
    feats = mfcc(root / "yes/00000002_nohash_0.wav", config(root))
    assert feats.shape == (161, 20)  # 1 s at 16 kHz, hop 100 (Kidger et al. 2020)
    audio, _ = sf.read(root / "yes/00000002_nohash_0.wav", dtype="float32")
    audio = np.pad(audio, (0, 16_000 - len(audio)))
    want = librosa.feature.mfcc(y=audio, sr=16_000, n_mfcc=20, n_fft=200, hop_length=100, n_mels=64).T
    np.testing.assert_allclose(feats, want, rtol=1e-6, atol=1e-6)


@pytest.mark.slow  # as above
def test_task_is_classification_at_the_readout_time_with_features_cached(tmp_path):
    _librosa()
    root = make_folder(tmp_path / "sc")
    d = make_speechcommands(config(root, hop_length=400, n_fft=400), dtype=torch.float64, progress=False)
    assert d.meta["classes"] == ["yes", "no", "up"] and d.train.inputs.shape == (9, 42, 20)
    assert torch.all(d.train.mask.sum(1) == 1) and bool(d.train.mask[:, 41].all())
    assert sorted(d.test.targets[:, 0, 0].long().tolist()) == [0, 1, 2]
    cached = list(root.glob("gnode-mfcc-*.npz"))
    assert len(cached) == 1
    again = make_speechcommands(config(root, hop_length=400, n_fft=400), dtype=torch.float64, progress=False)
    torch.testing.assert_close(again.train.inputs, d.train.inputs)


def test_wrong_layout_lists_what_was_found(tmp_path):
    root = make_folder(tmp_path / "sc")
    (root / "testing_list.txt").unlink()
    with pytest.raises(
        DataFormatError,
        match=r"missing the list file\(s\) \['testing_list.txt'\].*found "
        r"_background_noise_/, no/, up/, validation_list.txt, yes/",
    ):
        list_utterances(config(root))
    with pytest.raises(DataFormatError, match=r"missing .*word folder\(s\) \['left'\]"):
        list_utterances(SpeechCommandsConfig(data=str(root), words=("yes", "left")))
    with pytest.raises(DataFormatError, match=r"needs its folder \(--data DIR\)"):
        list_utterances(SpeechCommandsConfig())


def test_audio_at_another_sample_rate_or_not_audio_names_the_file(tmp_path):
    root = make_folder(tmp_path / "sc", per_word=3)
    sf.write(root / "no/00000002_nohash_0.wav", np.zeros(8000, dtype=np.float32), 8000)
    with pytest.raises(DataFormatError, match=r"no/00000002_nohash_0.wav: sample rate 8000 Hz"):
        mfcc(root / "no/00000002_nohash_0.wav", config(root))
    (root / "no/00000002_nohash_0.wav").write_bytes(b"RIFF....not a wave")
    with pytest.raises(DataFormatError, match=r"no/00000002_nohash_0.wav: not a readable audio file"):
        mfcc(root / "no/00000002_nohash_0.wav", config(root))
