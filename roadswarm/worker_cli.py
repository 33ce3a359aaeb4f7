"""`roadswarm worker`: run a Celery worker for some of the pipeline's queues."""

from __future__ import annotations

import os

import click

from ingest.queues import ALL_QUEUES
from roadswarm.errors import UserInputError


def parse_queues(text: str) -> list[str]:
    """Comma-separated queue names, each one the pipeline knows."""
    queues = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(queues) - set(ALL_QUEUES))
    if not queues or unknown:
        msg = f"unknown queue(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(ALL_QUEUES)}"
        raise UserInputError(msg)
    return queues


@click.command("worker")
@click.option(
    "--queues", default=",".join(ALL_QUEUES), show_default=True, help="Queues to consume."
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes (default: cores).",
)
@click.option(
    "--broker",
    envvar="ROADSWARM_BROKER_URL",
    required=True,
    help="Broker URL (or ROADSWARM_BROKER_URL).",
)
@click.option(
    "--name", default="roadswarm", show_default=True, help="Node name prefix (name@host)."
)
@click.option(
    "--beat",
    is_flag=True,
    help="Also run the scheduler (the reconciler every minute): on exactly one worker.",
)
def worker_command(
    queues: str, concurrency: int | None, broker: str, name: str, beat: bool
) -> None:
    """Consume tasks from the given queues until stopped (SIGTERM finishes running tasks first)."""
    chosen = parse_queues(queues)
    # The worker app reads its broker from the environment, as every worker process does.
    os.environ["ROADSWARM_BROKER_URL"] = broker
    from roadswarm.worker_app import app

    argv = ["worker", "--queues", ",".join(chosen), "-n", f"{name}@%h", "--loglevel", "INFO"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if beat:
        argv += ["--beat"]
    app.worker_main(argv)
