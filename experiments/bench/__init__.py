"""The sub-commands of ``python -m experiments.benchmark``, one module each.

Every module has a one-line docstring summary (its ``--help``), ``add_arguments(parser)`` and
``run(args) -> int``; what they share is here: the machine line that heads every table, and the
one way a figure file is written (:func:`jaxlabs.atomic.write_json`).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from contextlib import contextmanager

import jax

from jaxlabs import atomic
from jaxlabs.engine.plans import parse_forced_plan


def machine(devices=None) -> dict:
    """What a figure was measured on (and how busy the machine was as it started)."""
    devices = devices or jax.devices()[:1]
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "jax": jax.__version__, "backend": jax.default_backend(),
            "device": devices[0].device_kind, "devices": len(devices), "load_average": os.getloadavg()}


def load() -> str:
    """The 1, 5 and 15 minute load averages: on a shared machine they say how much a timing is worth."""
    return "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg())


def save(path, doc: dict) -> None:
    """``doc`` to ``path`` whole or not at all (a Ctrl-C mid-write keeps the earlier file)."""
    if path:
        atomic.write_json(path, doc)
        print(f"wrote {path}")


@contextmanager
def plan_cache(folder: str):
    """auto's plan cache in ``folder`` while the block runs (``JAXLABS_CACHE_DIR``, read by
    :func:`jaxlabs.engine.auto.cache_path` on every use): an empty folder is a user's first run."""
    before = os.environ.get("JAXLABS_CACHE_DIR")
    os.environ["JAXLABS_CACHE_DIR"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("JAXLABS_CACHE_DIR", None)
        else:
            os.environ["JAXLABS_CACHE_DIR"] = before


def timed(fn, *args, **kwargs):
    """(``fn(*args, **kwargs)``, wall seconds)."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def forced_plans(text: str) -> list:
    """``--plans vmap,map,hybrid:4`` -> Plans; auto (timed on its own where it is) or nothing is an error."""
    plans = []
    for item in text.split(","):
        try:
            plans.append(parse_forced_plan(item))
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return plans
