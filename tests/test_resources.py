import pytest

from search.running.resources import plan_placement


def test_cpu_only_runs_one_trial_per_core():
    p = plan_placement(cpus=2, gpus=0)
    assert (p.cpus_per_trial, p.gpus_per_trial, p.concurrency, p.device) == (1, 0, 2, "cpu")


def test_gpus_are_shared_by_four_small_trials_by_default():
    p = plan_placement(cpus=16, gpus=1)
    assert (p.gpus_per_trial, p.concurrency, p.device) == (0.25, 4, "cuda")
    assert p.cpus_per_trial == 4 and p.threads == 4


def test_overrides_win():
    p = plan_placement(cpus=16, gpus=2, gpus_per_trial=0.5, cpus_per_trial=2, concurrency=3)
    assert (p.gpus_per_trial, p.cpus_per_trial, p.concurrency) == (0.5, 2, 3)


def test_gpus_per_trial_zero_forces_cpu_trials():
    assert plan_placement(cpus=4, gpus=1, gpus_per_trial=0).device == "cpu"


@pytest.mark.parametrize("kwargs, match", [
    ({"gpus_per_trial": 0.5}, r"asks for more GPUs than the cluster has \(0\)"),
    ({"cpus_per_trial": 8}, r"--cpus-per-trial 8 exceeds the cluster's 2 CPUs"),
])
def test_impossible_requests_fail_before_trials_wait_forever(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plan_placement(cpus=2, gpus=0, **kwargs)


def test_a_space_can_ask_for_a_whole_gpu_per_trial():
    from search.running.resources import gpu_share

    # The MiniLM space asks for a whole GPU: one trial per GPU instead of four.
    assert plan_placement(cpus=16, gpus=2, gpus_per_trial=gpu_share(None, 1.0, 2)).concurrency == 2
    assert gpu_share(0.5, 1.0, 2) == 0.5          # the command line wins
    assert gpu_share(None, 1.0, 0) is None        # no GPU: CPU trials, no error
    assert gpu_share(None, 2.0, 1) == 1           # never more than the cluster has
    assert gpu_share(None, None, 4) is None
