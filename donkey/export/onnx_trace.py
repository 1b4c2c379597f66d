"""ONNX export of the four inference graphs, traced from the same wrappers the runtime runs.

The TorchScript-based exporter is chosen explicitly (`dynamo=False`): torch >= 2.9 defaults to
the dynamo exporter, which needs onnxscript and spells GridSample differently per opset.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from donkey.export.trt_rules import check_opset
from donkey.model.config import config_json
from donkey.model.files import atomic_output
from donkey.model.graphs import build_graphs
from donkey.model.networks import Networks
from donkey.model.spec import GRAPH_NAMES, GraphSpec, example_inputs

DEFAULT_OPSET = 18


def export_graph(module: nn.Module, spec: GraphSpec, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Traces one wrapper to an ONNX model with a dynamic batch axis and spec names."""
    inputs = example_inputs(spec, batch=2)
    args = tuple(inputs[n] for n in spec.input_names)
    dynamic = {name: {0: "batch"} for name in spec.input_names + spec.output_names}
    buffer = io.BytesIO()
    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints are expected here
        torch.onnx.export(
            module,
            args,
            buffer,
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_axes=dynamic,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    return model


def set_metadata(model: onnx.ModelProto, values: dict[str, str]) -> None:
    existing = {p.key: p for p in model.metadata_props}
    for key, value in values.items():
        if key in existing:
            existing[key].value = value
        else:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value


def save_model(model: onnx.ModelProto, path: Path) -> Path:
    with atomic_output(path) as tmp:
        onnx.save(model, str(tmp))
    return path


def export_all(
    networks: Networks, out_dir: Path, opset: int = DEFAULT_OPSET, checkpoint_sha256: str = ""
) -> dict[str, onnx.ModelProto]:
    """Exports every graph (fp32), writes `<graph>.onnx` into out_dir, returns the models."""
    check_opset(opset)
    out_dir.mkdir(parents=True, exist_ok=True)
    models = {}
    for name, (module, spec) in build_graphs(networks.eval()).items():
        model = export_graph(module, spec, opset)
        set_metadata(
            model,
            {
                "donkey.graph": name,
                "donkey.model_config": config_json(networks.config),
                "donkey.checkpoint_sha256": checkpoint_sha256,
                "donkey.spec": json.dumps(
                    {"inputs": spec.input_names, "outputs": spec.output_names}
                ),
            },
        )
        models[name] = model
    assert set(models) == set(GRAPH_NAMES)
    return models
