"""The one-line-per-trial progress of a search, and how it counts after a resume."""

from __future__ import annotations

from types import SimpleNamespace

from search.progress import ProgressPrinter


def _trial(trial_id: str, status: str, best: float | None, epoch: int = 3):
    result = {"epoch": epoch, "finished": True, **({"best_val_macro_f1": best} if best is not None else {})}
    return SimpleNamespace(trial_id=trial_id, status=status, last_result=result)


def test_a_resumed_search_counts_on_from_the_trials_that_had_ended(capsys):
    printer = ProgressPrinter(8, "val_macro_f1")
    restored = [_trial("a", "TERMINATED", 0.5), _trial("b", "ERROR", None), _trial("c", "TERMINATED", 0.7),
                _trial("d", "PENDING", None)]
    printer.on_step_begin(0, restored)
    printer.on_step_begin(1, restored)          # counted once, not at every step
    printer.on_trial_complete(2, restored, _trial("d", "TERMINATED", 0.6))
    out = capsys.readouterr().out
    assert "resumed: 3 of 8 trials had ended when Tune last saved the search, best so far 0.7000" in out
    assert "[  4/8] d" in out and "best so far 0.7000" in out.splitlines()[-1]


def test_a_fresh_search_counts_from_one(capsys):
    printer = ProgressPrinter(4, "val_macro_f1")
    printer.on_step_begin(0, [_trial("a", "PENDING", None)])
    printer.on_trial_complete(1, [], _trial("a", "TERMINATED", 0.25))
    out = capsys.readouterr().out
    assert "resumed" not in out and "[  1/4] a" in out and "best so far 0.2500" in out
