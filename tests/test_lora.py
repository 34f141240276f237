"""LoRA and the other fine-tuning methods on a pretrained GalSpecNet: adapters on Conv1d and Linear,
merged == unmerged, adapter-only checkpoints, the ordered rank, alpha tied to rank, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch
from peft.tuners.lora import LoraLayer

from search.cli import main
from search.strategy.searcher import DefineByRun
from spaces import PowerOfTwoRange, powers_of_two, uniform
from trainables.checkpoint import load_trainable_state, read_checkpoint, save_checkpoint, trainable_state
from trainables.data._base import InputSpec
from trainables.data.ztf_synthetic import CLASS_ORDER
from trainables.hparams import ConfigError
from trainables.models._finetune import parameter_counts
from trainables.models.spectra_cnn import GalSpecNet
from trainables.pair import Pair
from trainables.pretrained import BaseError

POINTS = 128
SPEC = InputSpec(kind="sequence", shapes={"x": (1, POINTS)}, classes=CLASS_ORDER)
PAIR = Pair("galspecnet_transfer", "medres_spectra")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A tiny 'pretrained' GalSpecNet checkpoint, written the way `spectune train --save` writes one."""
    torch.manual_seed(0)
    model = GalSpecNet(len(CLASS_ORDER), POINTS)
    folder = tmp_path_factory.mktemp("source") / "galspecnet"
    save_checkpoint(folder, model, {"model": "galspecnet", "config": {"dropout": 0.3},
                                    "spec": {"kind": "sequence", "shapes": {"x": [1, POINTS]},
                                             "classes": list(CLASS_ORDER)}})
    return folder


def build(source: Path, **config) -> torch.nn.Module:
    resolved = PAIR.resolve(config, source="test")
    torch.manual_seed(1)
    return PAIR.model_fn(SPEC, resolved, PAIR.load_base(str(source)))()


def batch() -> torch.Tensor:
    return torch.randn(4, 1, POINTS, generator=torch.Generator().manual_seed(2))


def test_lora_adapts_conv1d_and_linear_layers_and_trains_the_head_in_full(source):
    model = build(source, finetune="lora", lora_rank=4, lora_targets="conv+linear")
    adapted = {name.removeprefix("base_model.model.") for name, m in model.named_modules() if isinstance(m, LoraLayer)}
    assert adapted == {"features.0", "features.3", "features.6", "features.9", "classifier.2", "classifier.4"}
    assert isinstance(model.get_submodule("base_model.model.features.0").base_layer, torch.nn.Conv1d)
    assert isinstance(model.get_submodule("base_model.model.classifier.2").base_layer, torch.nn.Linear)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all("lora_" in n or "modules_to_save" in n for n in trainable)
    assert any("classifier.6.modules_to_save" in n for n in trainable)
    # The base starts from the source's weights, not random ones.
    state, _ = read_checkpoint(source)
    conv = model.get_submodule("base_model.model.features.0").base_layer
    assert torch.equal(conv.weight, state["features.0.weight"])
    counts = parameter_counts(model)
    assert 0 < counts["trainable_fraction"] < 0.2
    # The total is the base plus the adapters; the head's trained copy replaces its original, once.
    adapters = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert counts["total_params"] == sum(v.numel() for v in state.values()) + adapters
    only_linear = build(source, finetune="lora", lora_rank=4, lora_targets="linear")
    assert parameter_counts(only_linear)["trainable_params"] < counts["trainable_params"]


def test_merged_and_unmerged_lora_give_the_same_outputs(source):
    model = build(source, finetune="lora", lora_rank=8, lora_alpha_ratio=2.0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:     # B starts at zero; move it so the adapters change the output
                p.normal_(0, 0.05)
    model.eval()
    x = batch()
    with torch.no_grad():
        unmerged = model(x=x)
        plain = GalSpecNet(len(CLASS_ORDER), POINTS)
        plain.load_state_dict(read_checkpoint(source)[0])
        assert not torch.allclose(unmerged, plain.eval()(x), atol=1e-4)
        merged = model.merge_and_unload()(x=x)
    assert torch.allclose(unmerged, merged, atol=1e-5)


def test_an_adapter_only_checkpoint_rebuilds_the_same_model(source, tmp_path):
    model = build(source, finetune="lora", lora_rank=4)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    saved = trainable_state(model)
    assert all("lora_" in k or "modules_to_save" in k for k in saved)
    assert sum(v.numel() for v in saved.values()) == parameter_counts(model)["trainable_params"]
    save_checkpoint(tmp_path / "ckpt", model, {"model": "galspecnet_transfer"})
    state, record = read_checkpoint(tmp_path / "ckpt")
    assert record["model"] == "galspecnet_transfer"
    rebuilt = load_trainable_state(build(source, finetune="lora", lora_rank=4), state, "test checkpoint")
    x = batch()
    assert torch.equal(model.eval()(x=x), rebuilt.eval()(x=x))
    with pytest.raises(ValueError, match="does not fit this model"):
        load_trainable_state(build(source, finetune="lora", lora_rank=2), state, "test checkpoint")


def test_head_full_and_scratch_train_what_they_say(source):
    state, _ = read_checkpoint(source)
    head = build(source, finetune="head")
    assert [n for n, p in head.named_parameters() if p.requires_grad] == ["classifier.6.weight", "classifier.6.bias"]
    full = build(source, finetune="full")
    assert all(p.requires_grad for p in full.parameters())
    assert torch.equal(full.features[0].weight, state["features.0.weight"])
    scratch = build(source, finetune="scratch")
    assert all(p.requires_grad for p in scratch.parameters())
    assert not torch.equal(scratch.features[0].weight, state["features.0.weight"])


def test_alpha_is_tied_to_the_rank_so_the_scale_is_the_ratio(source):
    for rank in (2, 16):
        model = build(source, finetune="lora", lora_rank=rank, lora_alpha_ratio=2.0)
        layer = model.get_submodule("base_model.model.classifier.2")
        assert layer.r["default"] == rank
        assert layer.lora_alpha["default"] == 2.0 * rank
        assert layer.scaling["default"] == pytest.approx(2.0)


def test_the_rank_is_searched_as_an_ordered_log2_integer_and_recorded_itself():
    params = {"lora_rank": powers_of_two(2, 32), "lora_dropout": uniform(0.0, 0.3)}
    space = DefineByRun(params)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    ranks = set()
    for _ in range(20):
        trial = study.ask()
        derived = space(trial)
        assert isinstance(trial.distributions["lora_rank_log2"], optuna.distributions.IntDistribution)
        assert (trial.distributions["lora_rank_log2"].low, trial.distributions["lora_rank_log2"].high) == (1, 5)
        assert derived == {"lora_rank": 2 ** trial.params["lora_rank_log2"]}
        ranks.add(derived["lora_rank"])
        study.tell(trial, 0.0)
    assert ranks <= {2, 4, 8, 16, 32} and len(ranks) > 2
    assert space.encode({"lora_rank": 8, "lora_dropout": 0.1}) == {"lora_rank_log2": 3, "lora_dropout": 0.1}
    domain = params["lora_rank"]
    assert isinstance(domain, PowerOfTwoRange) and domain.contains(16) and not domain.contains(12)
    assert domain.to_json()["searched_as"] == "integer log2"
    with pytest.raises(ValueError, match="powers of two"):
        powers_of_two(3, 8)


@pytest.mark.parametrize("value, rule", [(0, "an int in the range [1, 1024]; got 0"),
                                         (2.5, "an int in the range [1, 1024]; got 2.5"),
                                         ("8", "an int in the range [1, 1024]; got '8'")])
def test_a_bad_rank_is_one_clear_error(value, rule):
    with pytest.raises(ConfigError, match=rule.replace("[", r"\[").replace("]", r"\]")):
        PAIR.resolve({"finetune": "lora", "lora_rank": value}, source="best.json")


def test_a_lora_key_without_lora_is_refused():
    with pytest.raises(ConfigError, match="'lora_rank' applies only when 'finetune' is 'lora'"):
        PAIR.resolve({"finetune": "full", "lora_rank": 8}, source="best.json")


def test_a_missing_or_foreign_base_is_one_clear_error(tmp_path, source):
    with pytest.raises(BaseError, match="no such folder. Make it with `make source`"):
        PAIR.load_base(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BaseError, match=r"\['model.pt', 'config.json'\] missing"):
        PAIR.load_base(str(tmp_path / "empty"))
    foreign = tmp_path / "mlp"
    save_checkpoint(foreign, torch.nn.Linear(2, 2), {"model": "mlp"})
    with pytest.raises(BaseError, match="holds a 'mlp' model"):
        PAIR.load_base(str(foreign))
    wrong_length = InputSpec(kind="sequence", shapes={"x": (1, 256)}, classes=CLASS_ORDER)
    with pytest.raises(ConfigError, match=r"trained on sequences of shape \(1, 128\) and the data has \(1, 256\)"):
        PAIR.model_fn(wrong_length, PAIR.resolve({}), PAIR.load_base(str(source)))()


def test_a_search_without_its_base_fails_before_ray_starts(tmp_path, monkeypatch, capsys):
    from tests.conftest import separable_set

    separable_set(tmp_path / "data", points=POINTS)
    monkeypatch.chdir(tmp_path)
    code = main(["search", "--space", "galspecnet_lora", "--data", str(tmp_path / "data"), "--points", str(POINTS),
                 "--base", str(tmp_path / "missing"), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert code == 2
    out, err = capsys.readouterr()
    assert "base checkpoint" in err and "make source" in err
    # Nothing was placed on Ray, tracked or written.
    assert "placement" not in out and not (tmp_path / "results").exists() and not (tmp_path / "m.db").exists()
    assert main(["train", "--space", "wine_mlp", "--base", str(tmp_path), "--json-out", str(tmp_path / "t.json")]) == 2
    assert "takes no base; drop --base" in capsys.readouterr().err


def test_a_retrain_refuses_a_base_that_changed_since_the_search(tmp_path, source, capsys):
    from tests.conftest import separable_set

    separable_set(tmp_path / "data", points=POINTS)
    other = tmp_path / "other"
    torch.manual_seed(5)
    save_checkpoint(other, GalSpecNet(len(CLASS_ORDER), POINTS), json.loads((source / "config.json").read_text()))
    best = {"space": "galspecnet_lora", "config": {"lora_rank": 2, "epochs": 1},
            "base": {"path": str(source), "sha256": "0" * 64}}
    (tmp_path / "best.json").write_text(json.dumps(best))
    code = main(["train", "--config", str(tmp_path / "best.json"), "--data", str(tmp_path / "data"),
                 "--base", str(other), "--json-out", str(tmp_path / "t.json")])
    assert code == 2
    assert "was searched from the base" in capsys.readouterr().err
    # With the recorded base, the same config trains, and --save keeps the adapters and head only.
    best["base"]["sha256"] = read_sha(source)
    (tmp_path / "best.json").write_text(json.dumps(best))
    assert main(["train", "--config", str(tmp_path / "best.json"), "--data", str(tmp_path / "data"),
                 "--json-out", str(tmp_path / "t.json"), "--save", str(tmp_path / "adapter")]) == 0
    summary = json.loads((tmp_path / "t.json").read_text())
    assert summary["base"]["sha256"] == read_sha(source) and summary["config"]["lora_rank"] == 2
    state, record = read_checkpoint(tmp_path / "adapter")
    assert record["base"]["path"] == str(source.resolve())
    assert sum(v.numel() for v in state.values()) == summary["trainable_params"] < summary["total_params"]


def read_sha(folder: Path) -> str:
    from trainables.pretrained import sha256_file

    return sha256_file(folder / "model.pt")


def test_a_lora_search_records_the_rank_the_base_and_the_sizes(ray_session, source, tmp_path):
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from search.options import SearchOptions
    from search.commands.search import run_search
    from tests.conftest import separable_set

    separable_set(tmp_path / "data", points=POINTS)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    outcome = run_search(SearchOptions(space="galspecnet_lora", data=tmp_path / "data", base=str(source), trials=3,
                                       max_epochs=2, seed=0, name="lora", concurrency=1, storage=tmp_path / "ray",
                                       results_root=tmp_path / "results", tracking_uri=uri))
    best = outcome.best
    assert best["base"]["sha256"] == read_sha(source) and best["base"]["path"] == str(source.resolve())
    assert best["config"]["finetune"] == "lora" and best["config"]["lora_rank"] in (1, 2, 4, 8, 16, 32)
    trials = pd.read_csv(outcome.results_dir / "trials.csv")
    # The space's first starting point (rank 8) runs first; every rank is a power of two, recorded as itself.
    assert 8 in set(trials["lora_rank"]) and all(r & (r - 1) == 0 for r in trials["lora_rank"])
    assert (trials["trainable_params"] > 0).all() and (trials["trainable_fraction"] < 0.5).all()
    client = MlflowClient(uri)
    run = client.get_run(best["mlflow"]["run_id"])
    assert int(run.data.params["lora_rank"]) == best["config"]["lora_rank"]
    assert 2 ** int(run.data.params["lora_rank_log2"]) == best["config"]["lora_rank"]
    assert run.data.metrics["trainable_params"] == trials.loc[trials["trial_id"] == best["trial_id"],
                                                              "trainable_params"].item()
    # The frozen base's memory reaches MLflow the same way (unquantised here: held == float32).
    assert run.data.metrics["base_bytes"] == run.data.metrics["base_bytes_unquantised"] > 0
    assert client.get_run(best["mlflow"]["parent_run_id"]).data.tags["base_sha256"] == read_sha(source)
    # The trial's checkpoint holds the adapters and the head, not a copy of the base.
    state = torch.load(outcome.results_dir / "checkpoint" / "model.pt", weights_only=True)
    assert all("lora_" in k or "modules_to_save" in k for k in state)
    # Retraining best.json rebuilds the same model from the same base, to the same score.
    assert main(["train", "--config", str(outcome.results_dir / "best.json"), "--data", str(tmp_path / "data"),
                 "--test", "--json-out", str(tmp_path / "final.json"), "--device", "cpu"]) == 0
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["config"] == best["config"] and final["base"]["sha256"] == best["base"]["sha256"]
    assert final["best_value"] == pytest.approx(best["best_value"], abs=1e-6)
