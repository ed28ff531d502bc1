import os
import tempfile

import pytest

# Tests run on the CPU; keep XLA from grabbing every core's worth of threads per test process.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The suite is compile-bound (dozens of small programs, each traced and compiled once), so the
# backend's LLVM optimisation is turned down: about 1.8x faster on a 2-core machine. The
# numerics are XLA's own either way (the parity tolerances pass at both levels); to test at the
# default level, run with XLA_FLAGS set, e.g. `XLA_FLAGS= python -m pytest -q`.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
# auto's plan decisions and the compiled programs (jaxlabs.engine.compile_cache: $JAXLABS_CACHE_DIR/xla)
# are cached per machine; the tests keep theirs apart from the user's, in one folder for the whole
# session: every test, every subprocess a test starts (they inherit the environment) and every
# pytest-xdist worker loads a program any of them compiled before, rather than compiling it again
os.environ.setdefault("JAXLABS_CACHE_DIR", tempfile.mkdtemp(prefix="jaxlabs-test-cache-"))


# The quick tier (`python -m pytest -m "not slow"`, a few minutes) leaves these out: each took 10 s or
# more on 2 busy cores with the session's compilation cache (fresh processes, kill-and-resume runs,
# two processes, forced device counts, every plan on a conv net, the benchmarks' smoke runs). The
# whole suite (the README's command, CI's) runs them. A name without [...] marks every parameter.
SLOW = {
    "test_plans.py": ["test_every_plan_trains_each_member_as_alone",
                      "test_auto_probes_a_classifier_on_its_cheaper_version"],
    "test_reproduce.py": ["test_a_lab_letter_runs_its_studies_and_writes_an_index",
                          *(f"test_quick_study_writes_a_report_with_the_original_numbers[{s}]"
                            for s in ("F-schedule", "D-depth", "D-dropout", "D-batchnorm", "D-augment", "D-subset",
                                      "D-kernel"))],
    "test_search.py": ["test_a_search_killed_mid_run_resumes_to_the_same_results",
                       "test_two_processes_search_as_one_process_with_two_devices_and_process_0_writes",
                       "test_decisions_are_the_same_on_one_device_and_on_four"],
    "test_devices.py": ["test_two_processes_train_one_grid_and_process_0_writes_it",
                        "test_map_is_bit_identical_across_device_counts_waves_and_compaction",
                        "test_members_split_over_four_devices_equal_the_one_device_run",
                        "test_processes_follow_process_0s_plan_choice"],
    "test_benchmark.py": ["test_conv_with_another_convolution_and_pytorch", "test_auto_and_sweep_default",
                          "test_devices_overhead", "test_conv_measures_each_member_count_and_plan", "test_plans"],
    "test_resume.py": ["test_a_killed_minibatch_sweep_with_a_best_epoch_checkpoint_resumes_exactly",
                       "test_a_killed_lab_skips_finished_studies_and_groups",
                       "test_ctrl_c_writes_a_checkpoint_says_how_to_resume_and_exits_130",
                       "test_a_damaged_newest_checkpoint_falls_back_to_the_one_before_it",
                       "test_a_killed_sweep_resumes_to_the_uninterrupted_results"],
    "test_compile_cache.py": ["test_two_processes_process_0_loads_what_it_kept_and_each_says_what_it_loaded",
                              "test_a_second_process_loads_every_program_the_first_compiled_and_writes_the_same_numbers",
                              "test_a_changed_xla_flag_compiles_afresh", "test_no_compile_cache_neither_loads_nor_keeps"],
    "test_gpu_check.py": ["test_tiny_device_suite_keeps_to_its_budget",
                          "test_gpu_check_lowers_a_conv_net_and_an_mlp_for_cuda_on_one_and_two_devices"],
    "test_classify.py": ["test_cifar_resnet_on_synthetic_data_trains_two_members"],
    "test_console_scripts.py": ["test_script_answers_help_and_passes_exit_codes_on[jaxlabs-search]"],
    "test_slices.py": ["test_an_epoch_in_pieces_gives_the_whole_epochs_numbers_bit_for_bit"],
    "test_resume_processes.py": ["test_two_processes_killed_mid_run_resume_to_the_uninterrupted_results"],
    "test_notebook.py": ["test_the_notebook_runs_and_shows_its_results"],
    "test_tensorboard_run.py": ["test_a_killed_run_resumed_appends_without_a_step_twice",
                                "test_a_resumed_run_that_had_no_tensorboard_logs_gets_the_whole_history"],
}


def pytest_collection_modifyitems(config, items):
    names = {(f, n) for f, tests in SLOW.items() for n in tests}
    found = set()
    for item in items:
        file = item.path.name
        for name in (item.name, item.originalname):
            if (file, name) in names:
                item.add_marker(pytest.mark.slow)
                found.add((file, name))
    # a renamed test would silently leave the slow tier: say so when its whole file was collected
    collected = {item.path.name for item in items}
    lost = sorted(f"{f}::{n}" for f, n in names - found
                  if f in collected and not config.getoption("keyword") and not config.getoption("markexpr"))
    if lost and len(config.args) <= 1 and not any("::" in a for a in config.args):
        raise pytest.UsageError(f"tests/conftest.py SLOW names tests that are not there: {', '.join(lost)}")


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """HOME without data, no JAXLABS_DATA_DIR / TFDS_DATA_DIR: load_dataset sees only what a test writes."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("JAXLABS_DATA_DIR", raising=False)
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    return tmp_path
