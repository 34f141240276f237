"""Every registered model, tested the moment its file exists: it builds from its declared defaults
for some standard input of a kind it takes, and maps a batch to one logit per class."""

import pytest
import torch

from trainables.data import InputSpec
from trainables.hparams import ConfigError
from trainables.models import build_model, get_model, list_models
from trainables.models.spectra_cnn import BaselineSpectraCNN, GalSpecNet
from trainables.pretrained import Base

CLASSES = tuple(f"c{i}" for i in range(5))
SPECS = {
    "sequence": [InputSpec("sequence", {"x": (1, 256)}, CLASSES), InputSpec("sequence", {"x": (2, 128)}, CLASSES)],
    "image": [InputSpec("image", {"x": (1, 28, 28)}, CLASSES), InputSpec("image", {"x": (3, 16, 16)}, CLASSES)],
    "tabular": [InputSpec("tabular", {"numeric": (6,)}, CLASSES, numeric=tuple("abcdef")),
                InputSpec("tabular", {"numeric": (4,), "categorical": (2,)}, CLASSES, numeric=tuple("abcd"),
                          categorical={"wilderness": 5, "soil": 41})],
    "tokens": [InputSpec("tokens", {"input_ids": (16,), "attention_mask": (16,)}, CLASSES)],
}
VOCAB = 50


def tiny_base(name: str, spec: InputSpec) -> Base | None:
    """Random weights in the form a pretrained model's loader gives them; a model that starts from
    pretrained weights is tested from one of these (its real weights are exercised by the README runs)."""
    entry = get_model(name)
    if entry.pretrained is None:
        return None
    torch.manual_seed(0)
    if name == "galspecnet_transfer":
        channels, points = spec.shapes["x"]
        state = GalSpecNet(spec.n_classes, points, 0.3, channels).state_dict()
        return Base("test", "test", "0" * 64, state, {"channels": channels, "points": points,
                                                       "classes": list(spec.classes)})
    if name == "minilm":
        from transformers import BertConfig, BertModel

        config = BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32, max_position_embeddings=32)
        return Base("test", "test", "0" * 64, BertModel(config).state_dict(), {"config": config.to_dict()})
    if name == "resnet18":
        from trainables.models.resnet18 import ResNet18

        return Base("test", "test", "0" * 64, ResNet18().state_dict(), {"classes": 1000})
    if name == "efficientnet_lite0":
        from trainables.models.efficientnet_lite0 import lite0

        pytest.importorskip("efficientnet_lite_pytorch", reason="`make install` installs efficientnet-lite-pytorch")
        return Base("test", "test", "0" * 64, lite0().state_dict(), {"classes": 1000})
    raise AssertionError(f"model {name!r} starts from pretrained weights: add a tiny base for it to tiny_base()")


def batch(spec: InputSpec, n: int = 3) -> dict[str, torch.Tensor]:
    out = {}
    for key, shape in spec.shapes.items():
        if key == "input_ids":
            out[key] = torch.randint(0, VOCAB, (n, *shape))
        elif key == "attention_mask":
            out[key] = torch.ones(n, *shape, dtype=torch.long)
        elif key == "categorical":
            vocab = torch.tensor(list(spec.categorical.values()))
            out[key] = (torch.rand(n, *shape) * vocab).long()
        else:
            out[key] = torch.randn(n, *shape)
    return out


@pytest.mark.parametrize("name", list_models())
def test_every_model_maps_a_batch_to_class_logits(name):
    entry = get_model(name)
    built = 0
    for kind in entry.inputs:
        for spec in SPECS[kind]:
            try:
                model = build_model(name, spec, base=tiny_base(name, spec))
            except ConfigError:
                continue       # e.g. the numeric-only MLP refuses categorical columns, with a message
            model.eval()
            assert model(**batch(spec)).shape == (3, len(CLASSES))
            built += 1
    assert built, f"{name} built for none of the standard inputs {[s.describe() for k in entry.inputs for s in SPECS[k]]}"


@pytest.mark.parametrize("name", list_models())
def test_every_model_declares_valid_defaults_and_refuses_unknown_knobs(name):
    entry = get_model(name)
    spec = SPECS[entry.inputs[0]][0]
    with pytest.raises(ConfigError, match=r"unknown hyperparameter\(s\) \['no_such_knob'\]"):
        build_model(name, spec, {"no_such_knob": 1}, base=tiny_base(name, spec))


def test_a_model_refuses_data_of_another_kind():
    with pytest.raises(ConfigError, match=r"model 'galspecnet' takes sequence inputs, but the data gives tabular"):
        build_model("galspecnet", SPECS["tabular"][0])


def test_galspecnet_has_the_notebook_layer_shapes_at_4096_points():
    model = GalSpecNet(n_classes=9, n_points=4096, dropout=0.3)
    x = torch.randn(2, 1, 4096)
    shapes = []
    for layer in model.features:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(64, 4096), (64, 4096), (64, 1024), (128, 1024), (128, 1024), (128, 256),
                      (256, 256), (256, 256), (256, 64), (32, 64), (32, 64)]
    linears = [(m.in_features, m.out_features) for m in model.classifier if isinstance(m, torch.nn.Linear)]
    assert linears == [(2048, 64), (64, 32), (32, 9)]


def test_baseline_has_the_notebook_layer_shapes_at_4096_points():
    model = BaselineSpectraCNN(n_classes=10, n_points=4096, dropout=0.3)
    convs = [(m.in_channels, m.out_channels, m.kernel_size, m.padding) for m in model.features
             if isinstance(m, torch.nn.Conv1d)]
    assert convs == [(1, 32, (3,), (1,)), (32, 64, (3,), (1,))]
    linears = [(m.in_features, m.out_features) for m in model.classifier if isinstance(m, torch.nn.Linear)]
    assert linears == [(64 * 2048, 256), (256, 10)]


def test_dropout_comes_from_the_config():
    model = build_model("galspecnet", SPECS["sequence"][0], {"dropout": 0.42})
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.42]


def test_galspecnet_needs_64_points():
    with pytest.raises(ConfigError, match=r"galspecnet pools by 4 three times and needs at least 64 points"):
        build_model("galspecnet", InputSpec("sequence", {"x": (1, 32)}, CLASSES))


@pytest.mark.parametrize("norm, layer", [("batch", torch.nn.BatchNorm2d), ("layer", torch.nn.GroupNorm),
                                         ("group", torch.nn.GroupNorm), ("none", torch.nn.Identity)])
def test_deeper_cnn_norm_choice(norm, layer):
    hp = {"norm": norm, **({"groups": 8} if norm == "group" else {})}
    model = build_model("deeper_cnn", SPECS["image"][0], hp)
    norms = [m for m in model.features if not isinstance(m, (torch.nn.Conv2d, torch.nn.ReLU, torch.nn.MaxPool2d))]
    assert len(norms) == 4 and all(isinstance(m, layer) for m in norms)
    if norm == "group":
        assert {m.num_groups for m in norms} == {8}
    if norm == "layer":
        assert {m.num_groups for m in norms} == {1}


def test_deeper_cnn_groups_only_with_group_norm_and_dividing_the_widths():
    with pytest.raises(ConfigError, match=r"'groups' applies only when 'norm' is 'group'; got norm='batch'"):
        build_model("deeper_cnn", SPECS["image"][0], {"norm": "batch", "groups": 4})
    with pytest.raises(ConfigError, match=r"norm 'group' needs widths divisible by groups=3"):
        build_model("deeper_cnn", SPECS["image"][0], {"norm": "group", "groups": 3})


def test_waveform_cnn_switches_change_the_architecture():
    spec = InputSpec("sequence", {"x": (1, 128)}, ("sine", "triangle", "square"))
    plain = build_model("waveform_cnn", spec)
    both = build_model("waveform_cnn", spec, {"batch_norm": True, "residual": True})
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in plain.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in both.modules()) == 2
    assert all(block.shortcut is None for block in plain.features)
    assert all(block.shortcut is not None for block in both.features)


def test_wide_and_deep_and_deep_cross_use_both_inputs():
    spec = SPECS["tabular"][1]
    x = batch(spec)
    for name in ("wide_deep", "deep_cross"):
        model = build_model(name, spec).eval()
        changed = dict(x, categorical=(x["categorical"] + 1) % torch.tensor(list(spec.categorical.values())))
        with torch.no_grad():
            # Wide&Deep's one-hot tables start at zero, so its deep part must carry the categoricals.
            assert not torch.equal(model(**x), model(**changed)), name
            assert not torch.equal(model(**x), model(**dict(x, numeric=x["numeric"] + 1))), name
    assert len(build_model("wide_deep", spec, {"crossed": True}).crossed) == 1
    assert len(build_model("deep_cross", spec, {"cross_depth": 3}).cross) == 3


def test_unknown_model_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="registered models: baseline_cnn, cifar_convnet, deep_cross, deeper_cnn, efficientnet_lite0, "
                                          "galspecnet"):
        build_model("resnet", SPECS["sequence"][0])
