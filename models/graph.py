"""Small, safe rewrites of ONNX graphs made before a model is loaded."""

from __future__ import annotations

import onnx
import onnx.utils
from onnx.tools.update_model_dims import update_inputs_outputs_dims


def strip_initializer_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Old exporters list weights as graph inputs too, which stops onnxruntime from folding them
    as constants; dropping them from the inputs changes no result."""
    weights = {init.name for init in model.graph.initializer}
    inputs = [node for node in model.graph.input if node.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    return model


def make_dynamic(
    model: onnx.ModelProto, inputs: dict[str, list[str | int]], outputs: dict[str, list[str | int]]
) -> onnx.ModelProto:
    """Give the named inputs and outputs symbolic dimensions, so any image size can be fed."""
    in_dims = {
        n.name: [d.dim_value for d in n.type.tensor_type.shape.dim] for n in model.graph.input
    }
    out_dims = {
        n.name: [d.dim_value for d in n.type.tensor_type.shape.dim] for n in model.graph.output
    }
    in_dims.update(inputs)
    out_dims.update(outputs)
    updated: onnx.ModelProto = update_inputs_outputs_dims(model, in_dims, out_dims)
    return updated


def cut_at(model: onnx.ModelProto, inputs: list[str], outputs: list[str]) -> onnx.ModelProto:
    """The part of the graph between `inputs` and `outputs`: a detector whose box decoding has sizes
    baked in can be cut before it, and the decoding done in numpy for any input size."""
    extracted: onnx.ModelProto = onnx.utils.Extractor(model).extract_model(inputs, outputs)
    return extracted
