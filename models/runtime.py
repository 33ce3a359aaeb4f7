"""onnxruntime sessions: on the CPU or the execution provider asked for, one per input shape on an
accelerator, with threads shared among the processes (or frames) that share the cores."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable

import onnxruntime as ort

from models.errors import ModelError

CPU = "CPUExecutionProvider"
# Most view shapes kept per detector on an accelerator: a frame size gives an overview and one or
# two band shapes; more only while a drive's frame size or horizon changes.
MAX_SHAPES = 4
PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, which a container or taskset narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cores_each(processes: int) -> int:
    """Intra-op threads for each of `processes` processes (or frames) sharing this one's cores.

    onnxruntime's threads spin while they wait: two processes each running as many threads as
    there are cores took 1.45x longer per frame than with one thread each (2 cores, 720p audit).
    """
    return max(1, usable_cores() // max(1, processes))


class ProviderUnavailableError(ModelError):
    """The execution provider asked for is not in this onnxruntime build or on this device."""


def choose_providers(requested: str | None = None) -> list[str]:
    """The providers to run on: the requested one, with the CPU behind it for nodes it lacks.

    Without a request, the CPU alone, even where an accelerator is installed: on an H200 the CUDA
    provider ran a whole 1920x1080 frame 13-25x slower than the CPU (`bench/bench_providers.py`,
    one session for all view shapes), and the per-shape sessions meant to fix that
    (`SessionsByShape`) are not yet measured on a GPU. Accelerators are used when asked for.
    """
    if not requested:
        return [CPU]
    available = ort.get_available_providers()
    name = PROVIDER_ALIASES.get(requested.lower(), requested)
    if name not in available:
        msg = (
            f"execution provider {requested!r} is not available here; available: "
            f"{', '.join(available)} (install onnxruntime-gpu or -openvino for others)"
        )
        raise ProviderUnavailableError(msg)
    return [name] if name == CPU else [name, CPU]


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


class SessionsByShape:
    """The session to run an input of a given shape on: one for all shapes on the CPU, one per
    shape on an accelerator.

    onnxruntime's CUDA provider plans each convolution again (cuDNN descriptors, algorithm search)
    whenever its input shape differs from its previous call's, and the scanner alternates an
    overview and a band of different shapes on every frame: on an H200 each view alone ran 2.5-6x
    faster than on the CPU, yet a whole frame 13-25x slower. A session that only ever sees one
    shape plans once. The least recently used beyond `limit` shapes is dropped.
    """

    def __init__(
        self,
        first: ort.InferenceSession,
        make: Callable[[], ort.InferenceSession] | None = None,
        *,
        limit: int = MAX_SHAPES,
    ) -> None:
        self.first = first
        self._make = make
        self._limit = limit
        self._by_shape: OrderedDict[tuple[int, ...], ort.InferenceSession] = OrderedDict()
        self._lock = threading.Lock()  # frames are scanned on several threads at once

    def get(self, shape: tuple[int, ...]) -> ort.InferenceSession:
        """The session for inputs of `shape`, made on first use."""
        if self._make is None:
            return self.first
        with self._lock:
            session = self._by_shape.get(shape)
            if session is None:
                session = self._make() if self._by_shape else self.first
                self._by_shape[shape] = session
                while len(self._by_shape) > self._limit:
                    self._by_shape.popitem(last=False)
            self._by_shape.move_to_end(shape)
            return session


def sessions_for(model: bytes | str, providers: list[str], *, threads: int = 0) -> SessionsByShape:
    """Sessions of a model on `providers`, one per input shape unless the CPU runs it."""
    first = create_session(model, providers, threads=threads)
    if providers[0] == CPU:
        return SessionsByShape(first)
    return SessionsByShape(first, lambda: create_session(model, providers, threads=threads))
