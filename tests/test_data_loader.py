import json

import numpy as np
import pytest
import torch

from conftest import load_ztf, separable_set, write_split
from trainables.data import DataError, get_data, scale_down
from trainables.data.ztf_synthetic import CLASS_ORDER as DEFAULT_CLASSES


def load_spectra(folder, classes=None, with_test=False):
    return load_ztf(folder, classes, test=with_test)


def test_loads_valid_splits_with_string_labels(tiny_data):
    data = load_spectra(tiny_data, with_test=True)
    assert data.classes == DEFAULT_CLASSES
    assert data.train.inputs["x"].shape == (9 * 12, 1, 256) and data.train.inputs["x"].dtype == np.float32
    assert data.spec.kind == "sequence" and data.spec.shapes == {"x": (1, 256)}
    assert np.bincount(data.val.labels).tolist() == [6] * 9
    assert len(data.fingerprint) == 16


def test_the_test_split_is_always_checked_and_fingerprinted(tiny_data):
    # One fingerprint for search, train and train --test: test.pt is hashed whether kept or not.
    module = get_data("ztf_spectra")
    assert module.load(tiny_data).fingerprint == load_spectra(tiny_data).fingerprint
    (tiny_data / "test.pt").write_text("a text file, not a tensor file")
    with pytest.raises(DataError, match=r"test\.pt: not a readable torch\.save file"):
        module.load(tiny_data)


def test_two_dimensional_flux_and_integer_labels_are_accepted(tmp_path, tiny_data):
    for name in ("train", "val", "test"):
        obj = torch.load(tiny_data / f"{name}.pt", weights_only=True)
        write_split(tmp_path, name, obj["flux"][:, 0, :], [DEFAULT_CLASSES.index(c) for c in obj["labels"]])
    data = load_spectra(tmp_path)
    assert data.train.inputs["x"].shape[1] == 1


def test_fingerprint_changes_with_the_data(tmp_path, tiny_data):
    other = separable_set(tmp_path / "other", seed=1)
    assert load_spectra(tiny_data).fingerprint != load_spectra(other).fingerprint


def _break(folder, split="train", **changes):
    obj = torch.load(folder / f"{split}.pt", weights_only=True)
    obj.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del obj[key]
    torch.save(obj, folder / f"{split}.pt")


def test_missing_folder_says_how_to_make_data(tmp_path):
    with pytest.raises(DataError, match=r"does not exist.*spectune data --space galspecnet"):
        load_spectra(tmp_path / "nowhere")


def test_missing_file(tiny_data):
    (tiny_data / "val.pt").unlink()
    with pytest.raises(DataError, match=r"val\.pt is missing"):
        load_spectra(tiny_data)


def test_missing_key(tiny_data):
    _break(tiny_data, labels=None)
    with pytest.raises(DataError, match=r"train\.pt: missing key\(s\) \['labels'\]"):
        load_spectra(tiny_data)


def test_count_mismatch(tiny_data):
    obj = torch.load(tiny_data / "val.pt", weights_only=True)
    _break(tiny_data, "val", labels=obj["labels"][:-3])
    with pytest.raises(DataError, match=r"val\.pt: 54 sequences in 'flux' but 51 entries in 'labels'"):
        load_spectra(tiny_data)


def test_length_mismatch_between_splits(tiny_data):
    obj = torch.load(tiny_data / "val.pt", weights_only=True)
    _break(tiny_data, "val", flux=obj["flux"][..., :128])
    with pytest.raises(DataError, match=r"shapes \(channels, length\) differ between splits "
                                        r"\{'train': \(1, 256\), 'val': \(1, 128\), 'test': \(1, 256\)\}"):
        load_spectra(tiny_data)


def test_wrong_shape(tiny_data):
    obj = torch.load(tiny_data / "train.pt", weights_only=True)
    _break(tiny_data, flux=obj["flux"].unsqueeze(1))
    with pytest.raises(DataError, match=r"shape \(N, C, L\) or \(N, L\); got \(108, 1, 1, 256\)"):
        load_spectra(tiny_data)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_flux(tiny_data, bad):
    obj = torch.load(tiny_data / "train.pt", weights_only=True)
    obj["flux"][7, 0, 3] = bad
    torch.save(obj, tiny_data / "train.pt")
    with pytest.raises(DataError, match=r"train\.pt: 1 examples contain NaN or inf in 'flux' \(first at index 7\)"):
        load_spectra(tiny_data)


def test_label_not_in_class_order(tiny_data):
    obj = torch.load(tiny_data / "val.pt", weights_only=True)
    _break(tiny_data, "val", labels=["SLSN-I"] + obj["labels"][1:])
    with pytest.raises(DataError, match=r"labels \['SLSN-I'\] are not in the class order.*classes\.json"):
        load_spectra(tiny_data)


def test_classes_json_extends_the_order(tiny_data):
    obj = torch.load(tiny_data / "val.pt", weights_only=True)
    _break(tiny_data, "val", labels=["SLSN-I"] + obj["labels"][1:])
    (tiny_data / "classes.json").write_text(json.dumps(list(DEFAULT_CLASSES) + ["SLSN-I"]))
    with pytest.raises(DataError, match=r"classes \['SLSN-I'\] have no training examples"):
        load_spectra(tiny_data)


def test_classes_option_overrides_classes_json(tiny_data):
    (tiny_data / "classes.json").write_text(json.dumps(list(reversed(DEFAULT_CLASSES))))
    assert load_spectra(tiny_data).classes[0] == "TDE"
    assert load_spectra(tiny_data, classes=list(DEFAULT_CLASSES)).classes == DEFAULT_CLASSES


def test_malformed_classes_json(tiny_data):
    (tiny_data / "classes.json").write_text('{"SN Ia": 0')
    with pytest.raises(DataError, match=r"classes\.json: not a JSON list of class names"):
        load_spectra(tiny_data)


def test_class_absent_from_train(tiny_data):
    obj = torch.load(tiny_data / "train.pt", weights_only=True)
    keep = [i for i, c in enumerate(obj["labels"]) if c != "TDE"]
    _break(tiny_data, flux=obj["flux"][keep], labels=[obj["labels"][i] for i in keep])
    with pytest.raises(DataError, match=r"classes \['TDE'\] have no training examples"):
        load_spectra(tiny_data)


def test_integer_label_out_of_range(tiny_data):
    obj = torch.load(tiny_data / "train.pt", weights_only=True)
    _break(tiny_data, labels=[9] + [DEFAULT_CLASSES.index(c) for c in obj["labels"][1:]])
    with pytest.raises(DataError, match=r"label indices must lie in \[0, 8\]"):
        load_spectra(tiny_data)


class Payload:
    """Anything that is not a tensor, list or dict needs full pickle to load."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_arbitrary_pickle_is_refused_not_executed(tiny_data, capsys):
    torch.save({"flux": Payload(), "labels": []}, tiny_data / "train.pt")
    with pytest.raises(DataError, match=r"train\.pt: refused to load: unpickling it would import '__builtin__\.print', "
                                        r"and loading a file that needs arbitrary pickle could run code"):
        load_spectra(tiny_data)
    assert "this must never run" not in capsys.readouterr().out


def test_a_plain_pickle_is_refused_naming_its_global(tiny_data, capsys):
    import pickle

    with open(tiny_data / "val.pt", "wb") as handle:
        pickle.dump({"flux": Payload(), "labels": []}, handle)
    with pytest.raises(DataError, match=r"val\.pt: refused to load: unpickling it would import 'builtins\.print'"):
        load_spectra(tiny_data)
    assert "this must never run" not in capsys.readouterr().out


def test_corrupt_file(tiny_data):
    (tiny_data / "train.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=r"train\.pt: not a readable torch\.save file"):
        load_spectra(tiny_data)


def test_scale_down_block_averages_and_subsamples(tiny_data):
    data = load_spectra(tiny_data, with_test=True)
    small = scale_down(data, points=64, train_per_class=5, seed=0)
    assert small.train.inputs["x"].shape == (45, 1, 64) and small.val.inputs["x"].shape == (54, 1, 64)
    assert small.spec.shapes == {"x": (1, 64)}
    assert np.bincount(small.train.labels).tolist() == [5] * 9
    np.testing.assert_allclose(small.val.inputs["x"][0, 0, 0], data.val.inputs["x"][0, 0, :4].mean(), rtol=1e-6)
    assert "scaled down" in small.describe()


def test_train_fraction_keeps_the_class_mix(tiny_data):
    data = load_spectra(tiny_data)
    small = scale_down(data, train_fraction=0.5, seed=0)
    assert np.bincount(small.train.labels).tolist() == [6] * 9
    assert small.fingerprint != scale_down(data, train_fraction=0.5, seed=1).fingerprint


def test_fingerprint_names_the_scaling_so_a_resume_cannot_mix_data(tiny_data):
    data = load_spectra(tiny_data)
    prints = {scale_down(data, **kw).fingerprint for kw in (
        {}, {"points": 64}, {"points": 128}, {"train_per_class": 5}, {"train_per_class": 5, "seed": 1},
        {"points": 64, "train_per_class": 5})}
    assert len(prints) == 6
    assert scale_down(data, points=64, seed=0).fingerprint == scale_down(data, points=64, seed=3).fingerprint
    assert scale_down(data, points=256).fingerprint == data.fingerprint    # nothing scaled


def test_scale_down_rejects_a_length_that_does_not_divide(tiny_data):
    with pytest.raises(DataError, match=r"--points must divide the sequence length 256"):
        scale_down(load_spectra(tiny_data), points=100)
