"""The benchmark's CPU smoke size runs end to end and writes its record; its figures are not
judged here (speed targets live in BENCHMARKS.md, from a GPU run)."""

import json

import numpy as np

from search.bench.benchmark import efficiency_curve, fixed_configs, main
from spaces import get_space
from trainables.data.ztf_synthetic import write_synthetic


def test_fixed_configs_are_reproducible_and_inside_the_space():
    a, b = fixed_configs(5), fixed_configs(5)
    assert a == b and len({json.dumps(c, sort_keys=True) for c in a}) == 5
    space = get_space("galspecnet")
    for config in a:
        assert set(config) == set(space.params)
        assert 2e-5 <= config["lr"] <= 3e-3 and config["batch_size"] in (64, 128, 256, 512)


def test_efficiency_curve_counts_every_epoch_in_the_order_it_was_reported():
    import pandas as pd

    histories = {
        "b": pd.DataFrame({"epoch": [1, 2], "val_macro_f1": [0.5, 0.2], "reported_at": [1.5, 2.5]}),
        "a": pd.DataFrame({"epoch": [1, 2, 3], "val_macro_f1": [0.1, 0.3, 0.6], "reported_at": [1.0, 2.0, 3.0]}),
    }
    assert efficiency_curve(histories) == [(1, 0.1), (2, 0.5), (3, 0.5), (4, 0.5), (5, 0.6)]


def test_cpu_smoke_benchmark_writes_json_and_markdown(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_synthetic(tmp_path / "data", seed=4, n_train=12, n_val=4, n_test=4, n_points=256)
    common = ["--data", str(tmp_path / "data"), "--size", "cpu", "--out", str(tmp_path / "bench"),
              "--markdown", str(tmp_path / "BENCHMARKS.md"), "--plot", str(tmp_path / "plots" / "eff.png")]
    assert main([*common, "--parts", "epoch,throughput,efficiency,overhead"]) == 0
    record = json.loads((tmp_path / "bench" / "bench.json").read_text())
    figures = record["figures"]
    assert record["size_name"] == "cpu smoke" and record["versions"]["torch"]
    assert figures["epoch_time"]["toolkit_epoch_s"] > 0 and figures["epoch_time"]["notebook_epoch_s"] > 0
    assert figures["throughput"]["configs"] == 4 and figures["throughput"]["big_batch_spectra_per_s"] > 0
    efficiency = figures["efficiency"]
    assert len(efficiency["curves"]["tpe+asha"]) == efficiency["seeds"] == 3
    # Random + FIFO without early stopping trains every trial for the whole budget.
    assert all(c[-1][0] == 4 * 3 for c in efficiency["curves"]["random+fifo"])
    assert set(efficiency["test_macro_f1"]) == {"tpe+asha", "random+fifo", "notebook default"}
    overhead = figures["overhead"]
    assert overhead["repeats"] == 3 and all(w > 0 for w in overhead["wall_s"].values())
    assert np.isfinite(overhead["per_trial_s"])   # its size is a benchmark figure, not a test
    markdown = (tmp_path / "BENCHMARKS.md").read_text()
    assert "CPU smoke run" in markdown and "## 4. Toolkit overhead" in markdown
    assert "![efficiency](plots/eff.png)" in markdown and (tmp_path / "plots" / "eff.png").exists()
    assert set(record["parts"]) == {"epoch", "throughput", "efficiency", "overhead"}


def test_merge_reruns_one_part_and_keeps_the_others(ray_session, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_synthetic(tmp_path / "data", seed=4, n_train=12, n_val=4, n_test=4, n_points=256)
    common = ["--data", str(tmp_path / "data"), "--size", "cpu", "--out", str(tmp_path / "bench"),
              "--markdown", str(tmp_path / "BENCHMARKS.md")]
    assert main([*common, "--parts", "epoch,overhead"]) == 0
    first = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert main([*common, "--parts", "epoch", "--merge"]) == 0
    merged = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert merged["figures"]["overhead"] == first["figures"]["overhead"]
    assert merged["parts"]["overhead"] == first["parts"]["overhead"]
    assert merged["parts"]["epoch"]["command"].endswith("--merge")
    assert "- part epoch:" in (tmp_path / "BENCHMARKS.md").read_text()

    first["device"] = "another machine"
    (tmp_path / "bench" / "bench.json").write_text(json.dumps(first))
    capsys.readouterr()
    assert main([*common, "--parts", "epoch", "--merge"]) == 2
    assert "figures from different machines do not go in one table" in capsys.readouterr().err
    assert main([*common, "--parts", "epoch,speed"]) == 2
    assert "--parts: unknown part(s) ['speed']" in capsys.readouterr().err
    assert json.loads((tmp_path / "bench" / "bench.json").read_text()) == first


def test_cpu_epoch_ratio_runs_interleaved_pairs(tmp_path):
    from dataclasses import replace

    from search.bench.benchmark import CPU, bench_cpu_epoch

    write_synthetic(tmp_path / "data", seed=4, n_train=6, n_val=2, n_test=2, n_points=256)
    figures = bench_cpu_epoch(tmp_path / "data", replace(CPU, cpu_ratio_points=128, cpu_ratio_pairs=2))
    assert len(figures["runs"]) == 2 and figures["train_spectra"] == 54 and figures["points"] == 128
    ratios = [r["toolkit_epoch_s"] / r["notebook_epoch_s"] for r in figures["runs"]]
    assert figures["median_ratio"] == np.median(ratios)
