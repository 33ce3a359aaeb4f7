"""One process at a time tidies a spool: a second one is refused with a clear message, not allowed
to delete the files the first is writing."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.rawqueue import RawSpool
from edge.spool import Spool, SpoolError


def test_a_second_tidying_connection_is_refused(tmp_path: Path) -> None:
    """While a spool is open, `edge upload` or `edge process` on it fail and say why."""
    with Spool(tmp_path) as first:
        with pytest.raises(SpoolError, match="in use by another roadswarm process"):
            Spool(tmp_path)
        # Helpers of the owner (threads of `edge run`, `edge status`) do not tidy: they may open.
        with RawSpool(tmp_path, first=False) as helper:
            assert helper.status()["keyframes"] == first.status()["keyframes"]
    with Spool(tmp_path) as again:  # released when the owner closed
        assert again.integrity_problems() == []
