"""Test helper: TensorBoard's own reader (the server's plugin_event_accumulator) over a log folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def read_runs(root: Path) -> dict[str, dict]:
    """Every run under ``root`` (its path relative to root) -> {"scalars": {tag: (steps, values)},
    "hparams": {tag: HParamsPluginData}} as TensorBoard's server loads them (purges included)."""
    from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util import tensor_util

    mux = pem.EventMultiplexer(tensor_size_guidance={"scalars": 0, "hparams": 0})
    mux.AddRunsFromDirectory(str(root))
    mux.Reload()
    out = {}
    for run in mux.Runs():
        acc = mux.GetAccumulator(run)
        scalars, hparams = {}, {}
        for tag in acc.Tags()["tensors"]:
            meta = acc.SummaryMetadata(tag)
            events = acc.Tensors(tag)
            if meta.plugin_data.plugin_name == "hparams":
                hparams[tag] = plugin_data_pb2.HParamsPluginData.FromString(meta.plugin_data.content)
            elif meta.plugin_data.plugin_name == "scalars":
                scalars[tag] = (np.asarray([e.step for e in events]),
                                np.asarray([float(tensor_util.make_ndarray(e.tensor_proto)) for e in events]))
        out[run] = {"scalars": scalars, "hparams": hparams}
    return out
