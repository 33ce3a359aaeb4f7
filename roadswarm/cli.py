"""The `roadswarm` command: one entry point, subcommands grouped by package."""

from __future__ import annotations

import sys

import click

from edge.errors import EdgeError
from ingest.errors import IngestError
from mapbuilder.errors import MapError
from models.errors import ModelError
from rewards.errors import RewardsError
from roadswarm import __version__
from roadswarm.errors import RoadswarmError
from roadswarm.lazy_group import LazyGroup
from roadswarm.logs import configure_logging
from roadswarm.settings import RoadswarmSettings

# Imported when used: a device has only the edge's libraries (see roadswarm/lazy_group.py).
COMMANDS = {
    "edge": "roadswarm.edge_cli:edge_group",
    "models": "roadswarm.models_cli:models_group",
    "ingest": "roadswarm.ingest_cli:ingest_group",
    "ops": "roadswarm.ops_cli:ops_group",
    "map": "roadswarm.map_cli:map_group",
    "rewards": "roadswarm.rewards_cli:rewards_group",
    "ledger": "roadswarm.rewards_cli:ledger_group",
    "sim": "roadswarm.sim.cli:sim_group",
    "demo": "roadswarm.demo:demo_command",
    "worker": "roadswarm.worker_cli:worker_command",
    "serve": "roadswarm.serve_cli:serve_command",
    "api": "roadswarm.serve_cli:api_group",
}

# Fatal errors of the packages below the composition layer: they carry a message for the user but
# no exit code of their own, since those packages must not import this layer.
PACKAGE_ERRORS = (EdgeError, IngestError, MapError, ModelError, RewardsError)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="roadswarm")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING (default) or ERROR.")
def cli(log_level: str | None) -> None:
    """roadswarm: privacy-safe dashcam imagery to fresh map tiles and rewards."""
    configure_logging(log_level or RoadswarmSettings().log_level)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a user-facing error becomes one line on stderr and a non-zero exit, not a trace."""
    try:
        cli.main(args=argv, prog_name="roadswarm", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "roadswarm"
        click.echo(f"error: {exc.format_message()} (see `{command} --help`)", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except RoadswarmError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except PACKAGE_ERRORS as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
