"""Choosing onnxruntime execution providers."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from models.runtime import PROVIDER_PREFERENCE, ProviderUnavailableError, choose_providers


def test_default_is_every_available_provider_fastest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Accelerators come before the CPU, in the order of preference, and unknown ones are left out."""
    available = [
        "CPUExecutionProvider",
        "AzureExecutionProvider",
        "CUDAExecutionProvider",
        "TensorrtExecutionProvider",
    ]
    monkeypatch.setattr(ort, "get_available_providers", lambda: available)
    assert choose_providers() == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]


def test_requested_provider_is_used_with_cpu_behind_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short name picks its provider; the CPU stays as fallback for nodes the device lacks."""
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert choose_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("CPUExecutionProvider") == ["CPUExecutionProvider"]


def test_missing_provider_is_a_clear_error() -> None:
    """Asking for a provider this onnxruntime lacks names what is available and what to install."""
    missing = next(p for p in PROVIDER_PREFERENCE if p not in ort.get_available_providers())
    with pytest.raises(
        ProviderUnavailableError, match=r"available: .*CPUExecutionProvider.*install"
    ):
        choose_providers(missing)
