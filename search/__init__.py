"""The searches, in parts, lowest first (each imports only from those before it; tests/test_layout.py):

- ``options.py``, the option table every part reads, and ``resolve.py``, options + space -> run settings;
- ``strategy/``: choosing configs and stopping trials (Optuna's searcher and samplers, the ASHA schedulers);
- ``running/``: running trials through Ray Tune (the driver, the trainable, tracking, progress, failures);
- ``replay/``: recorded searches replayed for other strategies, and ``commands/``: search, record, confirm, train;
- ``cli.py``: the ``spectune`` command; ``bench/``: the research instrument (make bench, panels, the lab).
"""
