import pytest
import torch

from trainables.models import BaselineSpectraCNN, GalSpecNet, build_model, list_models


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("points", [256, 1024])
def test_every_model_maps_spectra_to_class_logits(name, points):
    model = build_model(name, n_classes=9, n_points=points, dropout=0.3)
    assert model(torch.randn(3, 1, points)).shape == (3, 9)


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
    model = build_model("galspecnet", 9, 256, dropout=0.42)
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.42]


def test_unknown_model_lists_the_registered_ones():
    with pytest.raises(ValueError, match="registered models: baseline_cnn, galspecnet"):
        build_model("resnet", 9, 256, 0.1)
