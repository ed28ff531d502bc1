"""The console scripts of pyproject.toml (``jaxlabs-sweep``, ``jaxlabs-reproduce``, ``jaxlabs-search``): each names a
main that exists, answers --help, and passes its exit code on (2 for bad input). The installed
script is run where ``pip install -e .`` put it on PATH; otherwise the wrapper setuptools writes,
``sys.exit(main())``, is run as ``python -c``."""
import shutil
import subprocess
import sys
import tomllib
from importlib import import_module
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
WANTED = {"jaxlabs-sweep": ("experiments.lr_sweep", "python -m experiments.lr_sweep"),
          "jaxlabs-reproduce": ("experiments.reproduce", "python -m experiments.reproduce"),
          "jaxlabs-search": ("experiments.search", "python -m experiments.search")}


def command(name: str) -> list[str]:
    installed = shutil.which(name)
    if installed:
        return [installed]
    module, function = SCRIPTS[name].split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {function}; sys.exit({function}())"]


def test_the_commands_are_declared():
    assert {k: v.split(":")[0] for k, v in SCRIPTS.items()} == {k: m for k, (m, _) in WANTED.items()}


@pytest.mark.parametrize("name", sorted(WANTED))
def test_entry_point_is_a_main_taking_argv(name):
    module, function = SCRIPTS[name].split(":")
    main = getattr(import_module(module), function)
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0


@pytest.mark.parametrize("name", sorted(WANTED))
def test_script_answers_help_and_passes_exit_codes_on(name):
    prog = WANTED[name][1]
    ok = subprocess.run([*command(name), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and ok.stdout.startswith(f"usage: {prog}"), ok.stderr
    bad = subprocess.run([*command(name), "--no-such-flag"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--no-such-flag" in bad.stderr
