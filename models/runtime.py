"""onnxruntime sessions: the best execution provider available, or the one asked for."""

from __future__ import annotations

import onnxruntime as ort

from models.errors import ModelError

# Fastest first: a device's accelerator wins over its CPU.
PROVIDER_PREFERENCE = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CoreMLExecutionProvider",
    "CPUExecutionProvider",
)
PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


class ProviderUnavailableError(ModelError):
    """The execution provider asked for is not in this onnxruntime build or on this device."""


def choose_providers(requested: str | None = None) -> list[str]:
    """The providers to run on: the requested one (then CPU as fallback for unsupported nodes), or
    every available one in order of preference."""
    available = ort.get_available_providers()
    if requested:
        name = PROVIDER_ALIASES.get(requested.lower(), requested)
        if name not in available:
            msg = (
                f"execution provider {requested!r} is not available here; available: "
                f"{', '.join(available)} (install onnxruntime-gpu or -openvino for others)"
            )
            raise ProviderUnavailableError(msg)
        return [name] if name == "CPUExecutionProvider" else [name, "CPUExecutionProvider"]
    return [p for p in PROVIDER_PREFERENCE if p in available]


def create_session(
    model: bytes | str, providers: list[str], *, threads: int = 0
) -> ort.InferenceSession:
    """A session with every graph optimisation on; `threads` 0 lets onnxruntime use all cores."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # warnings about benign model quirks would flood the logs
    try:
        return ort.InferenceSession(model, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types, not exported stably
        msg = (
            f"onnxruntime cannot load the model ({exc}): re-fetch it with `roadswarm models fetch`"
        )
        raise ModelError(msg) from exc
