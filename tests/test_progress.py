"""The one-line-per-trial progress of a search, and how it counts after a resume."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from search.running.progress import ProgressPrinter


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


class Clock:
    """A clock the test moves: the pace is tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _result(trial_id: str, epoch: int, value: float, best: float | None = None):
    return SimpleNamespace(trial_id=trial_id), {"epoch": epoch, "val_macro_f1": value,
                                                "best_val_macro_f1": value if best is None else best}


def _status_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "finished" in line and "spent" in line]


def _feed(printer, clock, events):
    """``events``: (seconds since start, trial id, epoch, value), in time order."""
    start = clock.now
    printer.on_step_begin(0, [])
    for at, tid, epoch, value in events:
        clock.now = start + at
        trial, result = _result(tid, epoch, value)
        printer.on_trial_result(0, [], trial, result)


def test_status_lines_come_at_most_once_per_interval(capsys):
    clock = Clock()
    printer = ProgressPrinter(4, "val_macro_f1", max_epochs=100, every=30, tty=False, clock=clock)
    # Two trials report an epoch every 5 s each for 200 s; note when each status line came.
    events = [(t + d, tid, t // 5 + 1, 0.5) for t in range(0, 200, 5) for d, tid in ((0, "a"), (2, "b"))]
    printer.on_step_begin(0, [])
    printed_at = []
    for at, tid, epoch, value in events:
        clock.now = 1000.0 + at
        printer.on_trial_result(0, [], *_result(tid, epoch, value))
        printed_at += [at] * len(_status_lines(capsys.readouterr().out))
    assert len(printed_at) == 6 and all(b - a >= 30 for a, b in zip(printed_at, printed_at[1:]))


def test_never_more_than_one_status_line_per_epoch(capsys):
    clock = Clock()
    printer = ProgressPrinter(2, "val_macro_f1", max_epochs=5, every=30, tty=False, clock=clock)
    # Epochs slower than the interval: one line per reported epoch, none in between.
    _feed(printer, clock, [(100 * i, "a", i, 0.1 * i) for i in range(1, 5)])
    assert len(_status_lines(capsys.readouterr().out)) == 4
    clock.now += 600                                  # time passes with no new epoch: nothing to add
    printer._status(clock.now)
    assert _status_lines(capsys.readouterr().out) == []


def test_the_status_line_shows_running_epochs_finished_best_and_time_left(capsys):
    clock = Clock()
    printer = ProgressPrinter(4, "val_macro_f1", max_epochs=20, every=30, tty=False, clock=clock)
    printer.on_step_begin(0, [])
    clock.now += 10
    printer.on_trial_result(0, [], *_result("a", 1, 0.40))
    clock.now += 10
    printer.on_trial_result(0, [], *_result("b", 1, 0.55))
    clock.now += 40
    printer.on_trial_result(0, [], *_result("a", 2, 0.61))
    line = _status_lines(capsys.readouterr().out)[-1]
    assert "running 2 (a epoch 2/20 val_macro_f1 0.6100, b epoch 1/20 val_macro_f1 0.5500)" in line
    assert "finished 0/4" in line and "best so far 0.6100 (trial a)" in line and "1m00s spent" in line
    # 2 epochs in the 50 s after the first; left: 2 unstarted x 20 + 18 + 19 = 77 epochs -> 1925 s.
    assert "about 32m05s left" in line


def test_the_estimate_follows_the_epochs_trials_that_ended_ran():
    clock = Clock()
    printer = ProgressPrinter(3, "val_macro_f1", max_epochs=20, every=1e9, tty=False, clock=clock)
    printer.on_step_begin(0, [])
    for epoch in (1, 2, 3, 4):                         # trial a stopped early at epoch 4
        clock.now += 10
        printer.on_trial_result(0, [], *_result("a", epoch, 0.5))
    printer.on_trial_complete(0, [], _trial("a", "TERMINATED", 0.5, epoch=4))
    # 3 epochs in the 30 s after the first; left: 2 trials x 4 epochs (the mean of those that ended) -> 80 s.
    assert printer.time_left(clock.now) == 80
    assert ProgressPrinter(3, "val_macro_f1", clock=clock).time_left(clock.now) is None


def test_into_a_file_or_pipe_status_lines_are_plain_and_slower(capsys):
    clock = Clock()
    printer = ProgressPrinter(2, "val_macro_f1", max_epochs=5, clock=clock)   # capsys: not a terminal
    assert printer._every() == 60
    _feed(printer, clock, [(30, "a", 1, 0.3), (61, "a", 2, 0.4)])
    out = capsys.readouterr().out
    assert "\r" not in out and len(_status_lines(out)) == 1 and out.endswith("\n")


def test_on_a_terminal_one_status_line_is_redrawn(capsys):
    clock = Clock()
    printer = ProgressPrinter(2, "val_macro_f1", max_epochs=5, tty=True, clock=clock)
    assert printer._every() == 30
    _feed(printer, clock, [(31, "a", 1, 0.3), (62, "a", 2, 0.4)])
    out = capsys.readouterr().out
    assert out.count("\r\x1b[2K") == 2 and "\n" not in out
    printer.on_trial_complete(0, [], _trial("a", "TERMINATED", 0.4, epoch=2))
    out = capsys.readouterr().out
    assert out.startswith("\r\x1b[2K[  1/2] a")       # the status line is cleared before a trial's line


def test_a_printer_pickled_before_the_status_line_still_prints_one():
    import pickle

    old = ProgressPrinter(4, "val_macro_f1")
    for key in ("max_epochs", "every", "tty", "clock", "running", "best_seen", "epochs_seen", "finished_epochs",
                "last_status", "_fresh", "_drawn"):
        del old.__dict__[key]
    restored = pickle.loads(pickle.dumps(old))
    restored.on_step_begin(0, [])
    assert "running 0; finished 0/4" in restored.status_line(restored.clock())


def test_a_resumed_searchs_status_line_keeps_the_best_of_the_trials_that_had_ended(capsys):
    clock = Clock()
    printer = ProgressPrinter(4, "val_macro_f1", max_epochs=5, every=30, tty=False, clock=clock)
    printer.on_step_begin(0, [_trial("a", "TERMINATED", 0.7), _trial("b", "PENDING", None)])
    clock.now += 31
    printer.on_trial_result(0, [], *_result("b", 1, 0.4))
    line = _status_lines(capsys.readouterr().out)[-1]
    assert "running 1 (b epoch 1/5 val_macro_f1 0.4000); finished 1/4; best so far 0.7000;" in line


def test_text_the_toolkit_does_not_choose_is_printed_as_it_is(capsys):
    # With rich markup on, "[/x]" raised a MarkupError inside Tune's callback and "[errno 28]" vanished.
    printer = ProgressPrinter(2, "val_macro_f1")
    retried = SimpleNamespace(trial_id="[/x]", last_result={"epoch": 2}, max_failures=2,
                              spectune_failure="infrastructure", spectune_retries=1,
                              spectune_error="OSError: [errno 28] No space left on device [bold]")
    printer.on_trial_recover(0, [], retried)
    printer.on_trial_complete(0, [], _trial("[/x]", "TERMINATED", 0.5))
    out = capsys.readouterr().out
    assert "infrastructure failure (OSError: [errno 28] No space left on device [bold]); retry 1" in out
    assert "[  1/2] [/x]" in out


def test_the_top_table_prints_values_as_they_are(capsys):
    from search.running.progress import print_top

    trials = pd.DataFrame([{"trial_id": "[red]t[/red]", "outcome": "completed", "epochs": 3,
                            "best_val_macro_f1": 0.5, "best_epoch": 2, "act": "[/x]"}])
    print_top(trials, ["act"])
    out = capsys.readouterr().out
    assert "[red]t[/red]" in out and "[/x]" in out


def test_a_nan_score_never_becomes_the_best_so_far(capsys):
    clock = Clock()
    printer = ProgressPrinter(3, "val_macro_f1", max_epochs=5, every=30, tty=False, clock=clock)
    printer.on_step_begin(0, [])
    printer.on_trial_result(0, [], *_result("a", 1, float("nan")))
    assert "no score yet" in printer.status_line(clock.now)
    printer.on_trial_complete(0, [], _trial("a", "TERMINATED", float("nan")))
    printer.on_trial_result(0, [], *_result("b", 1, 0.4))
    printer.on_trial_complete(0, [], _trial("b", "TERMINATED", 0.4))
    assert "best so far 0.4000" in capsys.readouterr().out.splitlines()[-1]
    assert "best so far 0.4000 (trial b)" in printer.status_line(clock.now)
