"""Registered panels (issue 38): the design file's checks and its refusal unless committed, fresh seeds, the
statistics on hand-made rows, the confirmatory/exploratory label and the summaries make bench recomputes."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from search.bench import panel
from search.bench.panel_design import DesignError, check_fresh_seeds, design_commit, read_design
from search.bench.panel_stats import compare, counts, interval, pooled, verdict, wilcoxon_one_sided

ROOT = Path(__file__).resolve().parents[1]


def _design(**changes):
    d = {"name": "p1", "description": "a test panel",
         "strategies": {"default": {}, "random": {"sampler": "random", "scheduler": "fifo", "trials": 50},
                        "peer": {"sampler": "tune-tpe", "scheduler": "asha", "grace_period": 1,
                                 "reduction_factor": 4, "space_start": False}},
         "candidates": ["default"], "baselines": ["random", "peer"],
         "pairs": {"a": {"space": "wine_mlp", "options": {"budget": "cpu"}, "budget": {"minutes": 0.2},
                         "seeds": [101, 102], "tie_tolerance": 0.001},
                   "b": {"space": "wine_mlp", "options": {"budget": "cpu", "max_epochs": 5}, "budget": {"epochs": 40},
                         "seeds": [201, 202], "tie_tolerance": 0.0}},
         "confirm_seeds": [901, 902], "statistic": "wilcoxon-paired-one-sided", "alpha": 0.05, "correction": "holm",
         "better_pairs_at_least": 1, "pooled": {"baseline": "random", "share": 0.7, "interval": "wilson", "above": 0.5}}
    d.update(changes)
    return d


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def _repo(tmp_path: Path, design: dict | None = None, commit: bool = True) -> tuple[Path, Path]:
    """A git repository holding a design under search/bench/panels/."""
    root = tmp_path / "repo"
    folder = root / "search" / "bench" / "panels"
    folder.mkdir(parents=True)
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "t@example.com")
    _git(root, "config", "user.name", "t")
    (root / "README").write_text("x\n")
    _git(root, "add", "README")
    _git(root, "commit", "-qm", "start")
    path = folder / "p1.json"
    path.write_text(json.dumps(design or _design(), indent=1))
    if commit:
        _git(root, "add", str(path))
        _git(root, "commit", "-qm", "design")
    return root, path


# --- the design file -----------------------------------------------------------------------------------------


def test_a_valid_design_reads_with_its_pairs_strategies_and_budgets(tmp_path):
    _, path = _repo(tmp_path)
    d = read_design(path)
    assert d.candidates == ("default",) and d.baselines == ("random", "peer")
    assert (d.pairs["a"].minutes, d.pairs["a"].epochs, d.pairs["b"].epochs) == (0.2, None, 40)
    assert d.strategies["peer"]["reduction_factor"] == 4 and d.confirm_seeds == (901, 902)


@pytest.mark.parametrize("change, key", [
    ({"extra": 1}, "extra: unknown key"),
    ({"alpha": 1.5}, "alpha: must be a number"),
    ({"statistic": "t-test"}, "statistic: must be one of wilcoxon-paired-one-sided"),
    ({"name": "other"}, "name: must be the file's name 'p1'"),
    ({"candidates": ["nope"]}, "candidates: must be one of default, random, peer"),
    ({"strategies": {"default": {}, "random": {"sampler": "sobol"}}}, "strategies.random.sampler:"),
    ({"strategies": {"default": {}, "random": {"grace": 1}}}, "strategies.random.grace: unknown key"),
    ({"confirm_seeds": [101]}, "pairs.a.seeds: seed 101 is a confirmation seed too"),
])
def test_a_malformed_design_is_refused_in_one_line_naming_the_file_and_the_key(tmp_path, change, key):
    _, path = _repo(tmp_path, _design(**change), commit=False)
    with pytest.raises(DesignError) as info:
        read_design(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"design {path}: ") and key in message


def test_a_pair_key_error_and_a_bad_budget_name_their_key(tmp_path):
    d = _design()
    d["pairs"]["a"]["budget"] = {"minutes": 1, "epochs": 5}
    _, path = _repo(tmp_path, d, commit=False)
    with pytest.raises(DesignError, match=r"pairs\.a\.budget: must give exactly one of minutes"):
        read_design(path)
    d = _design()
    d["pairs"]["b"]["seeds"] = [1, 1]
    path.write_text(json.dumps(d))
    with pytest.raises(DesignError, match=r"pairs\.b\.seeds: repeats a seed: 1"):
        read_design(path)


def test_the_command_exits_2_with_one_error_line_for_a_malformed_design(tmp_path, capsys):
    _, path = _repo(tmp_path, _design(extra=True), commit=False)
    with pytest.raises(SystemExit) as info:
        panel.main(["check", str(path)])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and err.count("\n") == 0 and err.startswith("error: design ") and "extra" in err


# --- the refusal ---------------------------------------------------------------------------------------------


def test_an_uncommitted_design_is_refused(tmp_path):
    root, path = _repo(tmp_path, commit=False)
    with pytest.raises(DesignError, match="not committed; commit the design"):
        design_commit(path, root)


def test_a_design_changed_since_its_commit_is_refused_and_a_committed_one_accepted(tmp_path):
    root, path = _repo(tmp_path)
    commit, when = design_commit(path, root)
    assert commit == _git(root, "rev-parse", "HEAD").strip() and when.endswith("+00:00")
    path.write_text(path.read_text().replace('"alpha": 0.05', '"alpha": 0.1'))
    with pytest.raises(DesignError, match=f"changed since its commit {commit[:12]}"):
        design_commit(path, root)
    _git(root, "add", str(path))   # staged but not committed: still refused
    with pytest.raises(DesignError, match="changed since its commit"):
        design_commit(path, root)


def test_run_refuses_before_any_search_when_the_design_is_uncommitted(tmp_path):
    root, path = _repo(tmp_path, commit=False)
    with pytest.raises(DesignError, match="not committed"):
        panel.run_panel(path, root, search=lambda o: pytest.fail("a search ran"))
    d = _design()
    d["pairs"]["a"]["options"]["data"] = "data/missing"
    root, path = _repo(tmp_path / "other", d)
    with pytest.raises(DesignError, match=r"pairs\.a\.options\.data: no folder"):
        panel.run_panel(path, root, search=lambda o: pytest.fail("a search ran"))


# --- fresh seeds ---------------------------------------------------------------------------------------------


def test_seeds_used_by_another_design_by_earlier_rows_or_by_earlier_work_are_refused(tmp_path):
    root, path = _repo(tmp_path)
    design = read_design(path)
    check_fresh_seeds(design, root)   # nothing used yet
    other = _design(name="p0")
    other["pairs"] = {"a": {**other["pairs"]["a"], "seeds": [5, 102]}}
    (path.parent / "p0.json").write_text(json.dumps(other))
    with pytest.raises(DesignError, match=r"pairs\.a\.seeds: seed 102 was used before for this pair \(design p0"):
        check_fresh_seeds(design, root)
    (path.parent / "p0.json").unlink()
    rows = root / "results" / "panels" / "old"
    rows.mkdir(parents=True)
    pd.DataFrame({"pair": ["b", "a"], "seed": [202, 7]}).to_csv(rows / "rows.csv", index=False)
    with pytest.raises(DesignError, match=r"pairs\.b\.seeds: seed 202 was used before .*the rows of panel old"):
        check_fresh_seeds(design, root)
    (rows / "rows.csv").unlink()
    (path.parent / "used_seeds.json").write_text(json.dumps(
        {"used": {"*": [{"from": 900, "to": 999, "by": "earlier confirmations"}]}}))
    with pytest.raises(DesignError, match="seed 901 was used before .*earlier confirmations"):
        check_fresh_seeds(design, root)


def test_the_registered_design_of_issue_38_is_valid_and_its_seeds_fresh():
    paths = sorted(p for p in (ROOT / "search" / "bench" / "panels").glob("*.json") if p.name != "used_seeds.json")
    assert paths, "no registered design"
    for path in paths:
        design = read_design(path)
        check_fresh_seeds(design, ROOT)
        assert design.correction == "holm" and all(len(p.seeds) >= 10 for p in design.pairs.values())


# --- the statistics ------------------------------------------------------------------------------------------


def test_wilson_and_exact_intervals_match_known_values():
    low, high = interval(9, 10, "wilson")
    assert (round(low, 3), round(high, 3)) == (0.596, 0.982)
    low, high = interval(9, 10, "exact")   # Clopper-Pearson: the beta quantiles
    from scipy.stats import beta
    assert low == pytest.approx(beta.ppf(0.025, 9, 2)) and high == pytest.approx(beta.ppf(0.975, 10, 1))


def test_counts_use_the_stated_tolerance_for_ties():
    assert counts(np.array([0.01, 0.0, -0.0005, -0.02, 0.0009]), 0.001) == (1, 3, 1)
    assert counts(np.array([0.01, 0.0, -0.0005]), 0.0) == (1, 1, 1)


def test_all_equal_differences_give_p_one_both_ways():
    assert wilcoxon_one_sided(np.zeros(10), "greater") == 1.0 == wilcoxon_one_sided(np.zeros(10), "less")


def _rows(scores: dict[tuple[str, str], list[float]], mode: str = "max") -> pd.DataFrame:
    out = []
    for (pair, strategy), values in scores.items():
        for seed, v in enumerate(values):
            out.append({"pair": pair, "strategy": strategy, "seed": seed, "score": v, "mode": mode,
                        "wall_s": 60.0, "epochs": 100, "trials": 10})
    return pd.DataFrame(out)


def _stat_design(pairs=("a", "b", "c"), tie=0.0):
    return {"candidates": ["default"], "baselines": ["random"], "alpha": 0.05, "better_pairs_at_least": 2,
            "pairs": {p: {"tie_tolerance": tie, "seeds": list(range(10))} for p in pairs},
            "strategies": {"default": {}, "random": {}},
            "pooled": {"baseline": "random", "share": 0.7, "interval": "wilson", "above": 0.5}}


def test_paired_wilcoxon_counts_and_holm_over_pairs_by_hand():
    base = [0.5] * 10
    rows = _rows({("a", "random"): base, ("a", "default"): [0.6 + i / 100 for i in range(10)],   # 10 better
                  ("b", "random"): base, ("b", "default"): [0.55 + i / 100 for i in range(10)],  # 10 better
                  ("c", "random"): base, ("c", "default"): base})                                # all tied
    table = compare(rows, _stat_design()).set_index("pair")
    assert table.loc["a", ["better", "tied", "worse"]].tolist() == [10, 0, 0]
    assert table.loc["c", ["better", "tied", "worse"]].tolist() == [0, 10, 0]
    # Every difference positive: the exact one-sided p is 1/2^10; Holm over three: 3p, then max(3p, 2p), then 1.
    p = 1 / 1024
    assert table.loc["a", "p_better"] == pytest.approx(p) and table.loc["c", "p_better"] == 1.0
    assert table.loc["a", "p_better_holm"] == pytest.approx(3 * p)
    assert table.loc["b", "p_better_holm"] == pytest.approx(3 * p)
    assert table.loc["c", "p_better_holm"] == 1.0
    v = verdict(compare(rows, _stat_design()), _stat_design(), "default")["random"]
    assert v == {"better_on": ["a", "b"], "worse_on": [], "met": True}
    share = pooled(rows, _stat_design(), "default")
    assert (share["at_least_as_good"], share["n"]) == (30, 30) and share["met"]


def test_a_minimised_metric_counts_lower_as_better():
    rows = _rows({("a", "random"): [0.5] * 10, ("a", "default"): [0.4] * 9 + [0.6]}, mode="min")
    row = compare(rows, _stat_design(pairs=("a",))).iloc[0]
    assert (row["better"], row["worse"]) == (9, 1) and row["mean_diff"] == pytest.approx(0.08)
    assert row["p_better"] < 0.05 < row["p_worse"]


def test_holm_covers_every_candidate_when_a_winner_is_chosen_from_several():
    rows = _rows({("a", "random"): [0.5] * 10, ("a", "default"): [0.6] * 10, ("a", "cheap"): [0.6] * 10})
    design = {**_stat_design(pairs=("a",)), "candidates": ["default", "cheap"]}
    table = compare(rows, design)
    assert table["p_better_holm"].tolist() == pytest.approx([2 / 1024, 2 / 1024])


# --- standing and summaries ----------------------------------------------------------------------------------


def _panel_rows(root: Path, commit: str, started: str) -> Path:
    out = root / "results" / "panels" / "p1"
    out.mkdir(parents=True)
    rows = []
    for pair, seeds in (("a", (101, 102)), ("b", (201, 202))):
        for seed in seeds:
            for strategy, score in (("default", 0.9), ("random", 0.8), ("peer", 0.85)):
                rows.append({"panel": "p1", "design_commit": commit, "code_commit": commit, "started_at": started,
                             "pair": pair, "space": "wine_mlp", "metric": "val_macro_f1", "mode": "max",
                             "seed": seed, "strategy": strategy, "position": 0, "wall_s": 12.0, "epochs": 30,
                             "trials": 4, "search_score": score, "confirmed_score": score, "score": score,
                             "pick": "{}"})
    pd.DataFrame(rows).to_csv(out / "rows.csv", index=False)
    return out


def test_a_result_is_confirmatory_only_when_its_design_was_committed_before_every_run(tmp_path):
    root, path = _repo(tmp_path)
    commit, when = design_commit(path, root)
    out = _panel_rows(root, commit, "2020-01-01T00:00:00+00:00")   # runs before the design's commit
    (out / "meta.json").write_text(json.dumps({"panel": "p1", "design": "search/bench/panels/p1.json",
                                               "design_commit": commit, "design_committed_at": when}))
    summary = panel.summarise(out, root)
    assert summary["standing"] == "exploratory" and "before the design's commit" in summary["why"]
    assert (out / "summary.md").read_text().startswith("# Panel p1: EXPLORATORY")
    frame = pd.read_csv(out / "rows.csv").assign(started_at="2999-01-01T00:00:00+00:00")
    frame.to_csv(out / "rows.csv", index=False)
    summary = panel.summarise(out, root)
    assert summary["standing"] == "confirmatory" and summary["searches"] == summary["searches_planned"] == 12
    assert summary["verdicts"]["default"]["random"]["better_on"] == []   # two seeds cannot show it
    frame.assign(code_commit="0" * 40).to_csv(out / "rows.csv", index=False)
    assert panel.summarise(out, root)["standing"] == "exploratory"


def test_make_bench_recomputes_every_panel_summary_and_says_when_there_is_none(tmp_path, capsys):
    root, path = _repo(tmp_path)
    assert panel.summarise_all(root) == []
    assert "no panel results" in capsys.readouterr().out
    commit, when = design_commit(path, root)
    out = _panel_rows(root, commit, "2999-01-01T00:00:00+00:00")
    (out / "meta.json").write_text(json.dumps({"panel": "p1", "design": "search/bench/panels/p1.json",
                                               "design_commit": commit, "design_committed_at": when}))
    [summary] = panel.summarise_all(root)
    assert summary["standing"] == "confirmatory" and (out / "summary.json").is_file()
    assert "panel p1: confirmatory (12 of 12 searches)" in capsys.readouterr().out


def test_the_runner_interleaves_strategies_alternating_per_seed_and_writes_rows_with_the_commits(tmp_path):
    """The runner with a stand-in search (the real one: test_panel_end_to_end): one search at a time, the
    order reversed every other seed, a row per search with the design's commit; a rerun continues."""
    root, path = _repo(tmp_path, _design(confirm_seeds=[]))
    ran = []

    def fake(o):
        ran.append((o.seed, o.sampler, o.time_budget, o.max_total_epochs, o.grace_period, o.space_start))
        return {"epochs": 10, "trials": 3, "search_score": 0.5 + 0.01 * len(ran), "pick": {"lr": 0.001},
                "epochs_per_run": 60}

    out = panel.run_panel(path, root, search=fake)
    assert [s for s, *_ in ran[:6]] == [101, 101, 101, 102, 102, 102]
    assert [r[1] for r in ran[:6]] == ["tpe", "random", "tune-tpe", "tune-tpe", "random", "tpe"]
    assert ran[0][2:4] == (0.2, None) and ran[6][2:4] == (None, 40) and ran[2][4:] == (1, False)
    rows = pd.read_csv(out / "rows.csv")
    commit, _ = design_commit(path, root)
    assert len(rows) == 12 and set(rows["design_commit"]) == {commit}
    assert rows["score"].tolist() == rows["search_score"].tolist()   # no confirmation seeds: the search's score
    assert json.loads((out / "meta.json").read_text())["design_commit"] == commit
    assert panel.run_panel(path, root, search=lambda o: pytest.fail("ran again")) == out
    assert set(rows["metric"]) == {"val_macro_f1"} and (rows["wall_s"] >= 0).all()


def test_a_search_without_a_pick_is_a_row_that_loses_and_the_panel_goes_on(tmp_path):
    from results.errors import SearchError, SearchInterrupted

    d = _design(confirm_seeds=[])
    d["pairs"] = {"a": d["pairs"]["a"]}
    root, path = _repo(tmp_path, d)

    def search(o):
        if o.sampler == "tpe" and o.seed == 102:
            raise SearchError("search x reached its time budget of 0.2 min before any trial finished an epoch\nmore")
        score = {"tpe": 0.9, "random": 0.8 if o.seed == 101 else 0.85}.get(o.sampler, 0.8)
        return {"epochs": 10, "trials": 3, "search_score": score, "pick": {}, "epochs_per_run": 60}

    out = panel.run_panel(path, root, search=search)
    rows = pd.read_csv(out / "rows.csv")
    failed = rows[rows["failed"].notna()]
    assert len(rows) == 6 and failed[["strategy", "seed", "trials"]].values.tolist() == [["default", 102, 0]]
    assert failed["failed"].iloc[0].startswith("search x reached its time budget") and failed["score"].isna().all()
    table = compare(rows, json.loads(path.read_text())).set_index("baseline")
    def interrupted(o):
        raise SearchInterrupted("search x was interrupted")

    d = _design(name="p2")
    (path.parent / "p2.json").write_text(json.dumps({**d, "pairs": {"z": {**d["pairs"]["a"], "seeds": [7, 8]}}}))
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "p2")
    with pytest.raises(SearchInterrupted):   # Ctrl+C stops the panel, leaving no row for the search it cut
        panel.run_panel(path.parent / "p2.json", root, search=interrupted)
    assert not (root / "results" / "panels" / "p2" / "rows.csv").exists()
    # It takes the pair's worst score (0.8), as search.replay.stats does: below random's 0.85, equal to the peer's.
    assert table.loc["random", ["better", "tied", "worse"]].tolist() == [1, 0, 1]
    assert table.loc["peer", ["better", "tied", "worse"]].tolist() == [1, 1, 0]


def test_a_panel_search_runs_through_spectune_search_and_its_pick_is_confirmed_on_a_new_seed(tmp_path):
    """One search of a design (wine_mlp, one trial of 2 epochs) through run_search with the design's time budget,
    and its pick retrained on a confirmation seed by the live check's trainer: the real path the runner calls
    for every search (the runner's loop itself: the stand-in test above; a 2 x 2 panel took 195 s here)."""
    design = _design(confirm_seeds=[901])
    design["pairs"]["a"]["options"] = {"budget": "cpu", "max_epochs": 2}
    root, path = _repo(tmp_path, design)
    d = read_design(path)
    options = panel.search_options(d, d.pairs["a"], "random", 101, root / "runs", root)
    options = replace(options, trials=1)
    assert (options.sampler, options.scheduler, options.time_budget, options.seed) == ("random", "fifo", 0.2, 101)
    found = panel.run_one(options)
    assert (found["trials"], found["epochs"], found["epochs_per_run"]) == (1, 2, 2)
    assert 0 <= found["search_score"] <= 1 and set(found["pick"]) >= {"lr", "depth"}
    confirm = panel.Confirmation((901,))
    score = confirm.score(options, found["pick"], found["epochs_per_run"])
    assert 0 <= score <= 1 and confirm.score(options, found["pick"], 2) == score and len(confirm.runs) == 1
