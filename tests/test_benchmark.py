"""The benchmark's CPU smoke size runs end to end and writes its record; its figures are not
judged here (speed targets live in BENCHMARKS.md, from a GPU run)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from search.bench.benchmark import fixed_configs, main
from spaces import get_space
from trainables.data.ztf_synthetic import write_synthetic


def test_fixed_configs_are_reproducible_and_inside_the_space():
    a, b = fixed_configs(5), fixed_configs(5)
    assert a == b and len({json.dumps(c, sort_keys=True) for c in a}) == 5
    space = get_space("galspecnet")
    for config in a:
        assert set(config) == set(space.params)
        assert 2e-5 <= config["lr"] <= 3e-3 and config["batch_size"] in (64, 128, 256, 512)


@pytest.fixture(scope="module")
def smoke_run(ray_session, tmp_path_factory) -> Path:
    """One CPU smoke run of parts epoch, throughput, efficiency and overhead (minutes on 2 cores): its folder,
    with the data, bench/bench.json, BENCHMARKS.md and plots/. Read by the smoke test, and by the merge test
    as the earlier record whose parts a merge keeps; neither writes into it."""
    tmp_path = tmp_path_factory.mktemp("smoke")
    write_synthetic(tmp_path / "data", seed=4, n_train=12, n_val=4, n_test=4, n_points=256)
    # Part 3 replays recordings: the committed wine one large enough to judge, a small one it does not
    # judge, and one whose data this machine lacks.
    results = Path(__file__).resolve().parents[1] / "results" / "wine_mlp" / "curves"
    for name in ("cpu-c128x3", "cpu-c32x3"):
        shutil.copytree(results / name, tmp_path / "curves" / "wine_mlp" / "curves" / name,
                        ignore=shutil.ignore_patterns("replays"))
    recorded = results / "cpu-c128x3"
    lacking = tmp_path / "curves" / "galspecnet" / "curves" / "lacking"
    shutil.copytree(recorded, lacking, ignore=shutil.ignore_patterns("replays", "live.csv"))
    meta = json.loads((lacking / "meta.json").read_text())
    meta.update(space="galspecnet", data_options={**meta["data_options"], "path": str(tmp_path / "nowhere")})
    (lacking / "meta.json").write_text(json.dumps(meta))
    common = ["--data", str(tmp_path / "data"), "--size", "cpu", "--out", str(tmp_path / "bench"),
              "--markdown", str(tmp_path / "BENCHMARKS.md"), "--plots", str(tmp_path / "plots"),
              "--curves-root", str(tmp_path / "curves"), "--replay-repeats", "2",
              # Part 4's slope from 2 and 4 no-op trials, each timed once (the CPU size's 4 and 36, three times
              # each, are a measurement, not a test).
              "--overhead-trials", "2,4", "--overhead-repeats", "1"]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        assert main([*common, "--parts", "epoch,throughput,efficiency,overhead"]) == 0
    return tmp_path


def test_cpu_smoke_benchmark_writes_json_and_markdown(smoke_run):
    tmp_path = smoke_run
    record = json.loads((tmp_path / "bench" / "bench.json").read_text())
    figures = record["figures"]
    assert record["size_name"] == "cpu smoke" and record["versions"]["torch"]
    assert figures["epoch_time"]["toolkit_epoch_s"] > 0 and figures["epoch_time"]["notebook_epoch_s"] > 0
    assert figures["throughput"]["configs"] == 4 and figures["throughput"]["big_batch_spectra_per_s"] > 0
    efficiency = figures["efficiency"]
    wine = efficiency["spaces"]["wine_mlp/cpu-c128x3"]
    assert efficiency["repeats"] == 2 and wine["trials"] == 24 and wine["replay_64_trials_s"] > 0
    assert {r["strategy"] for r in wine["strategies"]} >= {"random (FIFO)", "Optuna TPE + HyperbandPruner"}
    # Random search's final pick against itself (another repeat's) at the full budget: a probability.
    baseline = next(r for r in wine["strategies"] if r["strategy"] == "random (FIFO)")
    assert 0 <= baseline["p_win_0.1"] <= baseline["p_win_1"] <= 1 and 0 <= baseline["regret_area"]
    assert all("ni_p_holm_all_1" in r for r in wine["strategies"])
    assert wine["model_check"]["configs"] >= 100 and wine["model"] in wine["model_check"]["errors"]
    assert "fewer than 4 per trial" in efficiency["spaces"]["wine_mlp/cpu-c32x3"]["not_judged"]
    assert "galspecnet" in efficiency["spaces"]["galspecnet/lacking"]["skipped"]
    overhead = figures["overhead"]
    trial = overhead["one_epoch"]
    assert overhead["repeats"] == 1 and trial["repeats"] == 1 and all(w > 0 for w in overhead["wall_s"].values())
    assert set(overhead["wall_s"]) == {"2", "4"} and record["size"]["noop_trials"] == [2, 4]
    assert np.isfinite(overhead["per_trial_s"])   # its size is a benchmark figure, not a test
    # Real one-epoch trials of the wine MLP: what they cost above their own training, beside the no-op ones.
    assert trial["space"] == "wine_mlp" and trial["threads"] == 1 and set(trial["wall_s"]) == {"2", "4"}
    assert trial["train_per_trial_s"] > 0 and trial["cadence_s"] > trial["train_per_trial_s"]
    assert trial["above_training_s"] == pytest.approx(trial["per_trial_s"] - trial["train_per_trial_s"])
    markdown = (tmp_path / "BENCHMARKS.md").read_text()
    assert "CPU smoke run" in markdown and "## 4. Toolkit overhead" in markdown
    assert "### 4b. A real one-epoch trial above its training (target <= 0.3 s)" in markdown
    assert "![replay wine_mlp/cpu-c128x3](plots/replay_wine_mlp_cpu-c128x3.png)" in markdown
    assert (tmp_path / "plots" / "replay_wine_mlp_cpu-c128x3.png").exists() and "### galspecnet/lacking" in markdown
    assert "Not judged: 32 recorded configs for 24-trial searches" in markdown
    assert "| random (FIFO) | " in markdown and "Timings on this machine: a replayed 64-trial search" in markdown
    assert set(record["parts"]) == {"epoch", "throughput", "efficiency", "overhead"}


def test_merge_reruns_one_part_and_keeps_the_others(smoke_run, tmp_path, monkeypatch, capsys):
    """The smoke run's record is the earlier one (a copy): epoch rerun with --merge keeps its other parts."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bench").mkdir()
    shutil.copyfile(smoke_run / "bench" / "bench.json", tmp_path / "bench" / "bench.json")
    common = ["--data", str(smoke_run / "data"), "--size", "cpu", "--out", str(tmp_path / "bench"),
              "--markdown", str(tmp_path / "BENCHMARKS.md")]
    first = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert main([*common, "--parts", "epoch", "--merge"]) == 0
    merged = json.loads((tmp_path / "bench" / "bench.json").read_text())
    for part, key in (("overhead", "overhead"), ("throughput", "throughput")):
        assert merged["figures"][key] == first["figures"][key]
        assert merged["parts"][part] == first["parts"][part]
    assert merged["parts"]["epoch"]["command"].endswith("--merge")
    assert "- part epoch:" in (tmp_path / "BENCHMARKS.md").read_text()

    first["device"] = "another machine"
    (tmp_path / "bench" / "bench.json").write_text(json.dumps(first))
    capsys.readouterr()
    assert main([*common, "--parts", "epoch", "--merge"]) == 2
    assert "figures from different machines do not go in one table" in capsys.readouterr().err
    assert main([*common, "--parts", "epoch,speed"]) == 2
    assert "--parts: unknown part(s) ['speed']" in capsys.readouterr().err
    assert main([*common, "--parts", "overhead", "--overhead-trials", "36,4"]) == 2
    assert "--overhead-trials: '36,4' is not two trial counts SMALL,BIG" in capsys.readouterr().err
    assert main([*common, "--parts", "overhead", "--overhead-repeats", "0"]) == 2
    assert "--overhead-repeats: 0 is not a number of runs (1 or more)" in capsys.readouterr().err
    assert json.loads((tmp_path / "bench" / "bench.json").read_text()) == first


def test_cpu_epoch_ratio_runs_interleaved_pairs(tmp_path):
    from dataclasses import replace

    from search.bench.benchmark import CPU, bench_cpu_epoch

    write_synthetic(tmp_path / "data", seed=4, n_train=6, n_val=2, n_test=2, n_points=256)
    figures = bench_cpu_epoch(tmp_path / "data", replace(CPU, cpu_ratio_points=128, cpu_ratio_pairs=2))
    assert len(figures["runs"]) == 2 and figures["train_spectra"] == 54 and figures["points"] == 128
    ratios = [r["toolkit_epoch_s"] / r["notebook_epoch_s"] for r in figures["runs"]]
    assert figures["median_ratio"] == np.median(ratios)


def test_part_3_says_where_the_live_check_disagrees_and_how_the_models_error_falls_with_the_table():
    from search.bench.benchmark import render_efficiency

    row = {"strategy": "random (FIFO)", "quality_median": 0.46, "quality_q25": 0.40, "quality_q75": 0.50,
           "epochs_median": 190, "regret_area": 0.5, "p_top1": 0.04, "top3_stopped_share": 0.0, "modelled_share": 0.0,
           **{f"p_win_{f:g}{end}": 0.5 for f in (0.1, 0.25, 0.5, 1) for end in ("", "_low", "_high")}}
    live = {"searches": 10, "quality_median": 0.59, "quality_q25": 0.57, "quality_q75": 0.61, "epochs_median": 201,
            "p_win_0.25": [0.2, 0.0, 0.5], "p_win_1": [0.5, 0.2, 0.8], "inside_replay_iqr": False,
            "epochs_within_15pc": True}
    study = {"command": "spectune replay ...", "recorded": "216 configs", "trials": 18, "patience": 5, "best_true": 0.62,
             "median_true": 0.06, "seed_noise": 0.044, "baseline_epochs": 191, "model": "forest", "png": "x.png",
             "model_check": {"errors": {"forest": 0.06}, "seed_noise": 0.044, "nearest": 0.1, "configs": 216, "folds": 5,
                             "by_size": {"model": "forest", "sizes": [32, 64, 128], "errors": [0.16, 0.15, 0.11],
                                         "seed_noise": 0.044, "needed": 14844.7}},
             "strategies": [row], "study_s": 100.0, "replay_64_trials_s": 0.2, "live": {"random (FIFO)": live}}
    text = "\n".join(render_efficiency({"repeats": 100, "spaces": {"galspecnet/x": study},
                                        "targets": {"configs_per_trial": 4, "repeats": 100, "replay_64_trials_s": 1.0,
                                                    "study_s": 300.0}}))
    assert "Its error by table size: 32 configs 0.1600, 64 configs 0.1500, 128 configs 0.1100; one seed noise at the " \
           "order of 10,000 configs" in text
    assert "The live check disagrees with this replay for 1 of 1 strategies" in text
    assert "| random (FIFO) | 10 | 0.5900 (0.5700-0.6100) | not judged | no |" in text
    study["live"]["random (FIFO)"]["recorded_seeds"] = [0.48, 0.45, 0.5]
    study["live"]["random (FIFO)"]["inside_replay_iqr"] = True
    assert "| random (FIFO) | 10 | 0.5900 (0.5700-0.6100) | 0.4800 (0.4500-0.5000) | yes |" in "\n".join(
        render_efficiency({"repeats": 100, "spaces": {"galspecnet/x": study},
                           "targets": {"configs_per_trial": 4, "repeats": 100, "replay_64_trials_s": 1.0,
                                       "study_s": 300.0}}))
    study["model_check"]["by_size"] = None
    text = "\n".join(render_efficiency({"repeats": 100, "spaces": {"galspecnet/x": study},
                                        "targets": {"configs_per_trial": 4, "repeats": 100, "replay_64_trials_s": 1.0,
                                                    "study_s": 300.0}}))
    assert "disagrees" not in text and "by table size" not in text


def test_the_live_figures_set_the_replay_beside_the_picks_judged_on_the_recordings_seeds(tmp_path):
    """A recording's seeds are shared by its configs, so the replay's range is compared with the live picks
    judged on those seeds where the live check judged them so, and with the new seeds' figure otherwise."""
    import pandas as pd

    from search.bench.benchmark import _live_figures

    rows = [{"strategy": "random (FIFO)", "epochs": 200, "baseline_epochs": 200.0, "final_quality": 0.6 + k / 100,
             "quality_at_0.25": 0.4, "quality_at_1": 0.6 + k / 100, "final_quality_recorded_seeds": 0.47 + k / 100}
            for k in range(5)]
    path = tmp_path / "live.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    summary = {"best_true": 0.62, "median_true": 0.06,
               "strategies": [{"strategy": "random (FIFO)", "quality_q25": 0.40, "quality_q75": 0.50,
                               "epochs_median": 190}]}
    figures = _live_figures(path, summary)["random (FIFO)"]
    assert figures["quality_median"] == pytest.approx(0.62) and figures["recorded_seeds"][0] == pytest.approx(0.49)
    assert figures["inside_replay_iqr"] is True
    pd.DataFrame(rows).drop(columns="final_quality_recorded_seeds").to_csv(path, index=False)
    figures = _live_figures(path, summary)["random (FIFO)"]
    assert figures["recorded_seeds"] is None and figures["inside_replay_iqr"] is False


def test_the_fused_throughput_part_measures_both_sides_and_renders_a_row_per_k():
    from search.bench.fused_throughput import Case, bench_fused, render_fused

    figures = bench_fused((Case("wine_mlp", (1, 2), 1, "wine"),), repeats=1)
    assert [r["k"] for r in figures["rows"]] == [1, 2]
    for row in figures["rows"]:
        assert row["separate_s"] > 0 and row["fused_s"] > 0
        assert row["fused_rate"] == pytest.approx(row["k"] * row["train_samples"] / row["fused_s"])
    table = render_fused(figures)
    assert sum(line.startswith("| wine_mlp |") for line in table) == 2
