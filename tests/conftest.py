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


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """HOME without data, no JAXLABS_DATA_DIR / TFDS_DATA_DIR: load_dataset sees only what a test writes."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("JAXLABS_DATA_DIR", raising=False)
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    return tmp_path
