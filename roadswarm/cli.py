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
from roadswarm.demo import demo_command
from roadswarm.edge_cli import edge_group
from roadswarm.edge_run_cli import run_command
from roadswarm.errors import RoadswarmError
from roadswarm.ingest_cli import ingest_group
from roadswarm.logs import configure_logging
from roadswarm.map_cli import map_group
from roadswarm.models_cli import models_group
from roadswarm.ops_cli import ops_group
from roadswarm.rewards_cli import ledger_group, rewards_group
from roadswarm.settings import RoadswarmSettings
from roadswarm.sim.cli import sim_group
from roadswarm.worker_cli import worker_command

# Fatal errors of the packages below the composition layer: they carry a message for the user but
# no exit code of their own, since those packages must not import this layer.
PACKAGE_ERRORS = (EdgeError, IngestError, MapError, ModelError, RewardsError)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="roadswarm")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING (default) or ERROR.")
def cli(log_level: str | None) -> None:
    """roadswarm: privacy-safe dashcam imagery to fresh map tiles and rewards."""
    configure_logging(log_level or RoadswarmSettings().log_level)


edge_group.add_command(run_command)
cli.add_command(edge_group)
cli.add_command(ingest_group)
cli.add_command(ops_group)
cli.add_command(models_group)
cli.add_command(map_group)
cli.add_command(rewards_group)
cli.add_command(ledger_group)
cli.add_command(sim_group)
cli.add_command(demo_command)
cli.add_command(worker_command)


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
