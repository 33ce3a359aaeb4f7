"""A click group that imports a subcommand only when it is used.

A dashcam installs `roadswarm[edge]` only: the server's libraries (Celery, SQLAlchemy, FastAPI...)
are not there, so `roadswarm edge ...` must not import the modules of `ingest`, `map` or `demo`.
Loading subcommands lazily also keeps every command's start-up short.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

SERVER_EXTRA_HINT = "install the server extra: pip install 'roadswarm[server]'"
OUR_PACKAGES = frozenset({"edge", "ingest", "mapbuilder", "rewards", "models", "roadswarm"})


class LazyGroup(click.Group):
    """Subcommands named `name -> "module:attribute"`, imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = self.lazy[cmd_name].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").split(".")[0]
            if not missing or missing in OUR_PACKAGES:
                raise  # a bug of ours, not a library this installation lacks
            return _unavailable(cmd_name, missing)
        command = getattr(module, attribute)
        if not isinstance(command, click.Command):
            msg = f"{self.lazy[cmd_name]} is not a click command"
            raise TypeError(msg)
        return command


def _unavailable(name: str, missing: str) -> click.Command:
    """A stand-in for a command whose libraries this installation lacks: it says which and how
    to get them instead of failing with a traceback."""

    def refuse() -> None:
        msg = f"`roadswarm {name}` needs {missing}, which this installation lacks: {SERVER_EXTRA_HINT}"
        raise click.UsageError(msg)

    return click.Command(
        name,
        callback=refuse,
        help=f"(unavailable here: needs {missing}; {SERVER_EXTRA_HINT})",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
