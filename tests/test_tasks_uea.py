"""UEA loaders through aeon: the shipped JapaneseVowels against its published description, and the --data route
on small generated files in the real `.ts` format, with the errors a wrong folder or a bad file gives."""

import numpy as np
import pytest
import torch

pytest.importorskip("aeon", reason="the UEA loaders read .ts files through aeon (pip install aeon)")

from gnode.tasks.sequences import DataFormatError
from gnode.tasks.uea import UEAConfig, find_ts_files, make_uea
from uea_files import write_ts


def make_dataset(folder, *, n_train=12, n_test=6, classes=("a", "b", "c"), name="CharacterTrajectories", seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("TRAIN", n_train), ("TEST", n_test)):
        labels = [classes[i % len(classes)] for i in range(n)]
        series = [rng.standard_normal((int(rng.integers(5, 12)), 3)) + classes.index(lab) for lab in labels]
        write_ts(folder / f"{name}_{split}.ts", series, labels, classes, name)
    return folder


@pytest.fixture(scope="module")
def japanese_vowels():
    return make_uea(UEAConfig("JapaneseVowels", val_fraction=0.2, seed=0), dtype=torch.float64)


def test_shipped_japanese_vowels_matches_the_published_description(japanese_vowels):
    d = japanese_vowels
    # Kudo et al. 1999 / UCI: 270 training and 370 test utterances, 12 LPC cepstra, lengths 7-29, 9 speakers
    assert d.meta["classes"] == [str(i) for i in range(1, 10)]
    assert d.meta["channels"] == 12 and d.meta["lengths"] == [7, 29]
    assert (len(d.train), len(d.val), len(d.test)) == (216, 54, 370)
    per_class = torch.bincount(d.train.targets[:, 0, 0].long(), minlength=9) + torch.bincount(
        d.val.targets[:, 0, 0].long(), minlength=9
    )
    assert per_class.tolist() == [30] * 9  # 30 training utterances per speaker
    # each sequence is read out one step after its last sample, and only there
    lengths = d.test.mask.float().argmax(dim=1)
    assert int(lengths.min()) == 7 and int(lengths.max()) == 29
    assert torch.equal(d.test.times.gather(1, lengths[:, None])[:, 0], lengths.double())


def test_standardisation_comes_from_the_training_split_only(japanese_vowels):
    d = japanese_vowels
    readout = d.train.mask.long().argmax(dim=1)  # = the sequence's length
    observed = d.train.inputs[torch.arange(d.train.inputs.shape[1])[None] < readout[:, None]]
    torch.testing.assert_close(observed.mean(0), torch.zeros(12, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(observed.std(0, unbiased=False), torch.ones(12, dtype=torch.float64), atol=1e-9, rtol=0)
    assert d.meta["standardization"]["samples"] == int(observed.shape[0])
    readout = d.test.mask.long().argmax(dim=1)
    test = d.test.inputs[torch.arange(d.test.inputs.shape[1])[None] < readout[:, None]]
    assert float(test.mean(0).abs().max()) > 1e-2  # the test split is not re-centred on itself


def test_a_generated_ts_folder_loads_through_the_data_route(tmp_path):
    make_dataset(tmp_path / "CharacterTrajectories")
    d = make_uea(UEAConfig("CharacterTrajectories", data=str(tmp_path), val_fraction=0.25), dtype=torch.float64)
    assert d.meta["classes"] == ["a", "b", "c"] and d.meta["channels"] == 3
    assert (len(d.train), len(d.val), len(d.test)) == (9, 3, 6)
    assert d.meta["sources"]["train"].endswith("CharacterTrajectories/CharacterTrajectories_TRAIN.ts")


def test_missing_data_route_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DataFormatError, match=r"not shipped with aeon.*--data DIR.*load_classification"):
        make_uea(UEAConfig("CharacterTrajectories"))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "JapaneseVowels").mkdir()
    with pytest.raises(
        DataFormatError,
        match=r"expected CharacterTrajectories_TRAIN.ts .* found JapaneseVowels/, "
        r"notes.txt",
    ):
        find_ts_files("CharacterTrajectories", tmp_path)


def test_malformed_ts_file_is_named(tmp_path):
    make_dataset(tmp_path)
    path = tmp_path / "CharacterTrajectories_TEST.ts"
    path.write_text(path.read_text().replace("@data\n", "@data\n1.0,oops,2.0:1,2,3:0,0,0:a\n"))
    with pytest.raises(DataFormatError, match=r"CharacterTrajectories_TEST.ts: not a readable .ts"):
        make_uea(UEAConfig("CharacterTrajectories", data=str(tmp_path)))


def test_label_the_header_does_not_declare_is_an_error(tmp_path):
    make_dataset(tmp_path)
    path = tmp_path / "CharacterTrajectories_TRAIN.ts"
    path.write_text(path.read_text().rstrip("\n")[:-1] + "z\n")  # the last case's label a/b/c -> z
    with pytest.raises(DataFormatError, match=r"TRAIN.ts: label\(s\) \['z'\] are not among the classes"):
        make_uea(UEAConfig("CharacterTrajectories", data=str(tmp_path)))


def test_test_labels_unseen_in_training_are_an_error(tmp_path):
    make_dataset(tmp_path, classes=("a", "b", "c"))
    rng = np.random.default_rng(1)
    write_ts(
        tmp_path / "CharacterTrajectories_TRAIN.ts",
        [rng.standard_normal((6, 3)) for _ in range(4)],
        ["a", "b", "a", "b"],
        ("a", "b", "c"),
    )
    with pytest.raises(DataFormatError, match=r"test split .*class label\(s\) \['c'\] do not occur in the training"):
        make_uea(UEAConfig("CharacterTrajectories", data=str(tmp_path)))


def test_nan_in_a_file_is_reported_with_its_location(tmp_path):
    make_dataset(tmp_path)
    path = tmp_path / "CharacterTrajectories_TRAIN.ts"
    lines = path.read_text().split("\n")
    i = lines.index("@data") + 3  # the third case
    values = lines[i].split(":")
    values[1] = ",".join(["NaN"] + values[1].split(",")[1:])  # channel 1, time 0
    lines[i] = ":".join(values)
    path.write_text("\n".join(lines))
    with pytest.raises(DataFormatError, match=r"train split .*: nan in sequence 2, time index 0, channel 1"):
        make_uea(UEAConfig("CharacterTrajectories", data=str(tmp_path)))
