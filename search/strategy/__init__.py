"""Choosing configs and stopping trials: Optuna's searcher and samplers, the ASHA schedulers, the epoch cap, warm start."""
