"""How commands report results: a short text for people, or one JSON document with `--json`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def json_option(func: F) -> F:
    """The `--json` flag every scriptable command takes."""
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(func)


def _default(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    msg = f"cannot write {type(value).__name__} as JSON"
    raise TypeError(msg)


def emit(result: object, *, as_json: bool, text: str) -> None:
    """Print `result` as JSON on stdout, or `text` for a person."""
    if as_json:
        click.echo(json.dumps(result, default=_default, indent=2))
    else:
        click.echo(text)
