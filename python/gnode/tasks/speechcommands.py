"""Speech Commands (Warden 2018, arXiv:1804.03209): one-second 16 kHz WAV utterances of short words, classified
from MFCC features, as in Kidger et al. (2020, Neural CDEs) and Kim, Can & Krishnamurthy (2023, sec. 5.4).

The folder layout is the dataset's own (v0.01 or v0.02, as extracted from speech_commands_v0.0X.tar.gz):

    DIR/<word>/<speaker>_nohash_<n>.wav     one folder per word (plus _background_noise_/, ignored)
    DIR/validation_list.txt                 relative paths of the validation utterances
    DIR/testing_list.txt                    relative paths of the test utterances; the rest is training

Audio is read with `soundfile`, padded or cut to one second, and turned into `n_mfcc` MFCCs by `librosa`
(`librosa.feature.mfcc` with n_fft 200, hop 100 and 64 mel bands by default: 161 frames of 20 coefficients,
the features of Kidger et al. 2020). Features are cached as `gnode-mfcc-<settings>.npz` beside the data, so a
second run reads them in seconds. Frames are one time unit apart; standardisation uses the training split only.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from gnode.atomic import atomic_write_bytes
from gnode.tasks.data import TaskData
from gnode.tasks.sequences import DataFormatError, Labels, Standardization, check_finite, classification_split

TEN_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SAMPLE_RATE = 16_000
LISTS = {"val": "validation_list.txt", "test": "testing_list.txt"}
WHERE = (
    "download speech_commands_v0.02.tar.gz (Warden 2018) and extract it into DIR, so that DIR holds "
    "one folder per word (DIR/yes/*.wav, ...), validation_list.txt and testing_list.txt"
)


@dataclass(frozen=True)
class SpeechCommandsConfig:
    """data: the extracted dataset folder (module docstring); words: the classes; n_mfcc, n_fft, hop_length,
    n_mels: the MFCC settings; max_per_word: use at most this many training utterances per word (None: all;
    the default run trains on a subset to fit a few minutes); seed: seeds that subset."""

    data: str = ""
    words: tuple[str, ...] = TEN_WORDS
    n_mfcc: int = 20
    n_fft: int = 200
    hop_length: int = 100
    n_mels: int = 64
    max_per_word: int | None = None
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "words", tuple(self.words))
        if len(self.words) < 2 or len(set(self.words)) != len(self.words):
            raise ValueError(f"SpeechCommandsConfig: words must be two or more distinct words, got {self.words!r}")
        for name in ("n_mfcc", "n_fft", "hop_length", "n_mels"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"SpeechCommandsConfig: {name} must be an integer >= 1, got {v!r}")
        if self.n_fft < self.hop_length:
            raise ValueError(
                f"SpeechCommandsConfig: n_fft ({self.n_fft}) must be at least hop_length "
                f"({self.hop_length}), or the frames skip audio between them"
            )
        if self.max_per_word is not None and not (isinstance(self.max_per_word, int) and self.max_per_word >= 1):
            raise ValueError(
                f"SpeechCommandsConfig: max_per_word must be an integer >= 1 or None, got {self.max_per_word!r}"
            )

    def feature_settings(self) -> dict:
        return {
            "words": list(self.words),
            "n_mfcc": self.n_mfcc,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "n_mels": self.n_mels,
            "sample_rate": SAMPLE_RATE,
        }


def list_utterances(config: SpeechCommandsConfig) -> dict[str, list[str]]:
    """{"train"|"val"|"test": sorted relative paths "word/file.wav"} from the folder layout and the two lists;
    errors name what is missing and what the folder holds."""
    if not config.data:
        raise DataFormatError(f"Speech Commands needs its folder (--data DIR): {WHERE}")
    root = Path(config.data)
    if not root.is_dir():
        raise DataFormatError(f"--data {root}: no such folder; {WHERE}")
    missing_lists = [f for f in LISTS.values() if not (root / f).is_file()]
    missing_words = [w for w in config.words if not (root / w).is_dir()]
    if missing_lists or missing_words:
        found = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
        shown = ", ".join(found[:25]) + (f", ... ({len(found)} entries)" if len(found) > 25 else "")
        what = [f"the list file(s) {missing_lists}"] if missing_lists else []
        what += [f"the word folder(s) {missing_words}"] if missing_words else []
        raise DataFormatError(f"--data {root}: missing {' and '.join(what)}; found {shown or 'nothing'}. {WHERE}")
    listed = {}
    for split, name in LISTS.items():
        lines = (root / name).read_text().split()
        listed[split] = {ln.strip().replace("\\", "/") for ln in lines if ln.strip()}
    out = {"train": [], "val": [], "test": []}
    for w in config.words:
        files = sorted(p.name for p in (root / w).glob("*.wav"))
        if not files:
            raise DataFormatError(f"--data {root}: the folder {w}/ holds no .wav files")
        for f in files:
            rel = f"{w}/{f}"
            out["test" if rel in listed["test"] else "val" if rel in listed["val"] else "train"].append(rel)
    for split, files in out.items():
        if not files:
            raise DataFormatError(
                f"--data {root}: no {split} utterance of the words {list(config.words)} "
                f"(check {LISTS.get(split, 'the lists')})"
            )
    return out


def mfcc(path: Path, config: SpeechCommandsConfig) -> np.ndarray:
    """(frames, n_mfcc) MFCCs of one utterance, padded or cut to one second of 16 kHz mono audio."""
    import soundfile

    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as e:
        raise DataFormatError(f"{path}: not a readable audio file ({e}); expected 16 kHz mono WAV") from e
    if rate != SAMPLE_RATE:
        raise DataFormatError(f"{path}: sample rate {rate} Hz; Speech Commands is 16 kHz mono WAV")
    import librosa  # after the checks: its first import loads numba-compiled code (seconds)

    audio = audio.mean(axis=1)
    audio = np.pad(audio, (0, max(0, SAMPLE_RATE - len(audio))))[:SAMPLE_RATE]
    feats = librosa.feature.mfcc(
        y=audio,
        sr=SAMPLE_RATE,
        n_mfcc=config.n_mfcc,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        n_mels=config.n_mels,
    )
    return feats.T.astype(np.float64)


def load_features(config: SpeechCommandsConfig, *, progress: bool = True) -> dict:
    """{"train"|"val"|"test": (features (N, frames, n_mfcc), words (N,))}, computed once and cached beside the data
    as gnode-mfcc-<hash of settings and file list>.npz (rewritten atomically; an unwritable folder just skips it)."""
    from tqdm.auto import tqdm

    files = list_utterances(config)
    key = hashlib.sha256(json.dumps([config.feature_settings(), files], sort_keys=True).encode()).hexdigest()[:16]
    cache = Path(config.data) / f"gnode-mfcc-{key}.npz"
    if cache.is_file():
        try:
            with np.load(cache) as z:
                return {s: (z[f"{s}_x"], z[f"{s}_y"].astype(str)) for s in files}
        except (OSError, ValueError, KeyError):
            pass  # damaged cache: recompute it
    out, arrays = {}, {}
    total = sum(len(v) for v in files.values())
    with tqdm(total=total, desc="mfcc", unit="file", disable=not progress) as bar:
        for split, rels in files.items():
            feats = []
            for rel in rels:
                feats.append(mfcc(Path(config.data) / rel, config))
                bar.update(1)
            x, y = np.stack(feats), np.array([r.split("/")[0] for r in rels])
            check_finite(list(x), where=f"MFCCs of the {split} split")
            out[split] = (x, y)
            arrays[f"{split}_x"], arrays[f"{split}_y"] = x, y
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    try:
        atomic_write_bytes(cache, buf.getvalue())
    except OSError:
        pass  # a read-only dataset folder: features are recomputed next time
    return out


def make_speechcommands(
    config: SpeechCommandsConfig, *, dtype: torch.dtype | None = None, progress: bool = True
) -> TaskData:
    """Train/val/test splits of Speech Commands classification from MFCCs (module docstring)."""
    feats = load_features(config, progress=progress)
    labels = Labels(config.words)
    split_y = {s: labels.encode(y, where=f"Speech Commands {s} split") for s, (_, y) in feats.items()}
    train_x = feats["train"][0]
    train_y = split_y["train"]
    if config.max_per_word is not None:
        rng = np.random.default_rng(config.seed)
        keep = np.sort(
            np.concatenate(
                [rng.permutation(np.flatnonzero(train_y == c))[: config.max_per_word] for c in range(len(config.words))]
            )
        )
        train_x, train_y = train_x[keep], train_y[keep]
    stats = Standardization.fit(list(train_x))

    def split(x, y):
        return classification_split([stats.apply(s) for s in x], y, dtype=dtype)

    meta = {
        "task": "speechcommands",
        "kind": "classification",
        "config": asdict(config),
        "classes": list(config.words),
        "channels": config.n_mfcc,
        "frames": int(train_x.shape[1]),
        "standardization": stats.to_dict(),
        "source": str(config.data),
        "sizes": {"train": len(train_x), "val": len(split_y["val"]), "test": len(split_y["test"])},
        "seconds_per_frame": config.hop_length / SAMPLE_RATE,
    }
    return TaskData(
        split(train_x, train_y),
        split(feats["val"][0], split_y["val"]),
        split(feats["test"][0], split_y["test"]),
        meta=meta,
    )
