"""The benchmark's CPU smoke size runs end to end and writes its record; its figures are not
judged here (speed targets live in BENCHMARKS.md, from a GPU run)."""

import json

from results.benchmark import efficiency_curve, fixed_configs, main
from spaces import get_space
from trainables.synthetic import write_synthetic


def test_fixed_configs_are_reproducible_and_inside_the_space():
    a, b = fixed_configs(5), fixed_configs(5)
    assert a == b and len({json.dumps(c, sort_keys=True) for c in a}) == 5
    space = get_space("galspecnet")
    for config in a:
        assert set(config) == set(space.params)
        assert 2e-5 <= config["lr"] <= 3e-3 and config["batch_size"] in (64, 128, 256, 512)


def test_efficiency_curve_accumulates_epochs_in_finishing_order():
    import pandas as pd

    histories = {
        "b": pd.DataFrame({"epoch": [1, 2], "val_macro_f1": [0.2, 0.5], "timestamp": [5, 9]}),
        "a": pd.DataFrame({"epoch": [1, 2, 3], "val_macro_f1": [0.1, 0.3, 0.4], "timestamp": [1, 2, 3]}),
    }
    assert efficiency_curve(histories) == [(3, 0.4), (5, 0.5)]


def test_cpu_smoke_benchmark_writes_json_and_markdown(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_synthetic(tmp_path / "data", seed=4, n_train=12, n_val=4, n_test=4, n_points=256)
    assert main(["--data", str(tmp_path / "data"), "--size", "cpu", "--out", str(tmp_path / "bench"),
                 "--markdown", str(tmp_path / "BENCHMARKS.md")]) == 0
    record = json.loads((tmp_path / "bench" / "bench.json").read_text())
    figures = record["figures"]
    assert record["size_name"] == "cpu smoke" and record["versions"]["torch"]
    assert figures["epoch_time"]["toolkit_epoch_s"] > 0 and figures["epoch_time"]["notebook_epoch_s"] > 0
    assert figures["throughput"]["configs"] == 4 and figures["throughput"]["big_batch_spectra_per_s"] > 0
    efficiency = figures["efficiency"]
    assert len(efficiency["curves"]["tpe+asha"]) == efficiency["seeds"] == 3
    assert set(efficiency["test_macro_f1"]) == {"tpe+asha", "random+fifo", "notebook default"}
    assert figures["overhead"]["per_trial_s"] > 0
    markdown = (tmp_path / "BENCHMARKS.md").read_text()
    assert "CPU smoke run" in markdown and "## 4. Toolkit overhead" in markdown
    assert (tmp_path / "bench" / "efficiency.png").exists()
