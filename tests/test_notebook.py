"""examples/quickstart.ipynb, stored without outputs, executed in a fresh kernel (nbclient) on a
tiny configuration, its outputs checked: the tables as HTML, the figures as PNG, the best settings."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the dev extra installs nbclient and nbformat")
nbclient = pytest.importorskip("nbclient", reason="the dev extra installs nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
TINY = "EPOCHS = 3\nSEEDS = 2\nMEMBERS = 4\nOWN_EPOCHS = 3\n"


def outputs(cell, kind: str) -> str:
    """Every output of ``cell`` of MIME type ``kind`` (or ``stream`` text), joined."""
    parts = []
    for o in cell.outputs:
        if kind == "stream" and o.output_type == "stream":
            parts.append(o.text)
        elif "data" in o and kind in o.data:
            parts.append(o.data[kind])
    return "\n".join(parts)


def test_the_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert code[0].source.startswith("# the sizes")  # the cell the test below replaces


def test_the_notebook_runs_and_shows_its_results(tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[0].source = TINY
    # the kernel imports this checkout's jaxlabs, whatever folder it runs in
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    by_source = {c.source.split("\n")[0]: c for c in code}

    sweep = by_source['sweep = jaxlabs.sweep("boston", lr=[0.01, 0.001], seeds=SEEDS, epochs=EPOCHS, progress=False)']
    assert "<table>" in outputs(sweep, "text/html") and "lr=0.001" in outputs(sweep, "text/html")
    assert "| setting" in outputs(sweep, "text/plain")  # the Markdown table where HTML is not shown
    assert "'setting': 'lr=0.0" in outputs(by_source["sweep.best()"], "text/plain")
    figures = by_source["for figure in sweep.figures().values():  # the report's figures"]
    assert sum(1 for o in figures.outputs if "image/png" in o.get("data", {})) == 2  # loss curves, true vs pred
    assert outputs(by_source['sweep.curves("val_loss").shape  # (members, epochs)'], "text/plain") == "(4, 3)"
    search = next(c for c in code if c.source.startswith("found = jaxlabs.search"))
    assert "<table>" in outputs(search, "text/html") and "pruned" in outputs(search, "text/html")
    assert outputs(by_source['found.best()["setting"]'], "text/plain").startswith("{'lr': ")
    own = next(c for c in code if c.source.startswith("class Net(nnx.Module)"))
    assert "lr=0.1" in outputs(own, "text/html")
    saved = outputs(code[-1], "stream")
    assert "'setting': 'lr=0." in saved and saved.strip().endswith("runs/quickstart-clusters")
    assert (tmp_path / "runs" / "quickstart-clusters" / "report.md").is_file()
