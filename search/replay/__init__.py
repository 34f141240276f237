"""Replaying searches on recorded curves, in one home.

- :mod:`~search.replay.simulate`: the event loop that drives the live searcher and scheduler objects
  on served runs (:class:`Strategy`, :func:`replay`);
- :mod:`~search.replay.serve`: what a proposed config is served with: the recorded table itself
  (exact random search draws its configs without replacement) or a model of the curves fitted on it,
  checked on recorded configs it was not fitted on;
- :mod:`~search.replay.stats`: the statistics a comparison is judged by (paired win probability at
  fixed budgets, normalised regret and its area, top-1 picks, non-inferiority with Holm's correction);
- :mod:`~search.replay.study`: ``spectune replay`` (a panel of strategies, many repeats);
- :mod:`~search.replay.front`: ``spectune replay --objective`` (Pareto fronts);
- :mod:`~search.replay.report`: the tables and figures a study writes.

The recordings themselves are files of :mod:`results.curves`. The research instrument built on the replay
(live searches, NePS's PriorBand, sweeps, nearest serving, size curves) is :mod:`search.bench.lab`: the bench
imports the replay, never the reverse.
"""
