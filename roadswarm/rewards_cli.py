"""`roadswarm rewards ...` and `roadswarm ledger ...`: closing epochs, proofs, the ledger's checks."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from ingest.catalog import utcnow
from ingest.db import Catalog
from ingest.services import open_catalog
from ingest.settings import IngestSettings
from rewards.binsummary import refresh_bins
from rewards.charts import write_charts
from rewards.close import close_epoch, epoch_summary
from rewards.epochs import Epoch
from rewards.errors import EpochError
from rewards.fleet import set_fleet_split
from rewards.operator import PUBLIC_KEY, create_operator_key, load_operator_key
from rewards.proof import device_proof, verify_proof
from rewards.settings import BASE_UNITS_PER_TOKEN, RewardsSettings
from rewards.sync import sync_ledger
from rewards.verify import verify_ledger
from roadswarm import __version__
from roadswarm.errors import UserInputError
from roadswarm.output import emit, json_option


def _catalog() -> Catalog:
    return open_catalog(IngestSettings())


def _epoch(_ctx: click.Context, _param: click.Parameter, value: str) -> Epoch:
    try:
        return Epoch.parse(value)
    except EpochError as exc:
        raise UserInputError(str(exc)) from exc


def _tokens(amount: str | int) -> str:
    return f"{int(amount) / BASE_UNITS_PER_TOKEN:,.9f}"


@click.group("rewards")
def rewards_group() -> None:
    """Reward epochs, drivers' proofs, the operator key (settings: ROADSWARM_REWARDS_*)."""


@rewards_group.group("epoch")
def epoch_group() -> None:
    """Weekly reward epochs, named by their Monday (UTC)."""


@epoch_group.command("close")
@click.argument("epoch", callback=_epoch)
@click.option(
    "--force",
    is_flag=True,
    help="Close before the grace period ends or while frames are pending (they are left out).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the charts (default ROADSWARM_REWARDS_OUTPUT_DIR/EPOCH).",
)
@json_option
def close_command(epoch: Epoch, force: bool, out: Path | None, as_json: bool) -> None:
    """Score the epoch, allocate its pool, sign the result and append it to the ledger."""
    settings = RewardsSettings()
    catalog = _catalog()
    closed = close_epoch(
        catalog,
        epoch,
        settings.params(),
        key=load_operator_key(settings.operator_key_dir),
        code_version=__version__,
        now=utcnow(),
        force=force,
    )
    charts = write_charts(catalog, closed.computed, out or settings.output_dir / epoch.key)
    summary = {**epoch_summary(closed.record), "synced_records": closed.synced, "charts": charts}
    pool = summary["pool"]
    text = (
        f"epoch {epoch.key} closed (record {summary['seq']}, {summary['record_hash'][:16]}...): "
        f"{summary['frames']} frames, {_tokens(pool['allocated'])} tokens to {summary['devices_paid']} devices, "
        f"{_tokens(pool['carried_out'])} carried over; charts in {charts[0].parent}"
    )
    emit(summary, as_json=as_json, text=text)


def _proof_text(proof: dict[str, Any]) -> str:
    allocation = proof["allocation"]
    payees = allocation["payees"]
    lines = [
        f"epoch {proof['epoch']}, device {proof['device_id'][:16]}...: {_tokens(allocation['gross'])} tokens"
        f" (cumulative {_tokens(allocation['cumulative'])})",
        *(f"  {a['reason']}: {_tokens(a['amount'])}" for a in allocation["allocations"]),
        f"  driver {_tokens(payees['driver']['amount'])}, fleet manager {payees['fleet_manager']['payee'] or '-'}"
        f" {_tokens(payees['fleet_manager']['amount'])}",
        f"  {len(proof['segments'])} segment directions; inclusion proof of {len(proof['proof'])} steps:"
        f" {'verified' if proof['verified'] else 'NOT verified'} against root {proof['statement']['allocation_root'][:16]}...",
    ]
    return "\n".join(lines)


@rewards_group.group("bins")
def bins_group() -> None:
    """The per-bin capture summary epochs are closed from."""


@bins_group.command("refresh")
@json_option
def bins_refresh_command(as_json: bool) -> None:
    """Recompute the bins of frames matched, moved or quarantined since the last refresh (closing
    an epoch does it too; run it often, e.g. from cron, so a close has little left to do)."""
    report = refresh_bins(_catalog(), RewardsSettings().params())
    text = f"{report.pairs} device-segment pairs recomputed into {report.rows} rows" + (
        " (summary rebuilt for new parameters)" if report.rebuilt else ""
    )
    emit(asdict(report), as_json=as_json, text=text)


@rewards_group.command("proof")
@click.argument("device")
@click.argument("epoch", callback=_epoch)
@json_option
def proof_command(device: str, epoch: Epoch, as_json: bool) -> None:
    """A device's allocation, per-segment breakdown and inclusion proof for a closed epoch."""
    proof = device_proof(_catalog(), device, epoch)
    emit(proof, as_json=as_json, text=_proof_text(proof))


@rewards_group.command("verify-proof")
@click.argument("proof_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--operator-key", default="", help="Hex public key the epoch must be signed by.")
@json_option
def verify_proof_command(proof_file: Path, operator_key: str, as_json: bool) -> None:
    """Check a saved `rewards proof --json` offline: leaf, path, root and signature."""
    try:
        proof = json.loads(proof_file.read_text())
        verified = verify_proof(proof, operator_key or None)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        msg = f"{proof_file} is not a proof written by `roadswarm rewards proof --json` ({exc})"
        raise UserInputError(msg) from exc
    signer = proof["statement"]["operator_key"]
    pinned = bool(operator_key)
    text = ("verified" if verified else "NOT verified") + (
        ""
        if pinned
        else f" (signed by {signer}: pass --operator-key to require the operator's key)"
    )
    emit(
        {"verified": verified, "operator_key": signer, "pinned": pinned}, as_json=as_json, text=text
    )
    if not verified:
        raise SystemExit(1)


@rewards_group.group("operator-key")
def operator_key_group() -> None:
    """The key that signs every epoch result."""


@operator_key_group.command("init")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Default ROADSWARM_REWARDS_OPERATOR_KEY_DIR.",
)
@json_option
def operator_key_init(folder: Path | None, as_json: bool) -> None:
    """Create the operator key (mode 600); an existing key is never replaced."""
    where = folder or RewardsSettings().operator_key_dir
    public = create_operator_key(where)
    emit(
        {"public_key": public, "folder": where},
        as_json=as_json,
        text=f"operator key {public} in {where}",
    )


@rewards_group.group("fleet")
def fleet_group() -> None:
    """Fleet managers' shares of their devices' earnings."""


@fleet_group.command("set")
@click.argument("device")
@click.option("--manager", default="", help="Payee of the fleet manager's share.")
@click.option(
    "--split-bp", type=int, required=True, help="Manager's share in basis points (2500 = 25 %)."
)
@json_option
def fleet_set(device: str, manager: str, split_bp: int, as_json: bool) -> None:
    """Set a device's fleet split, effective from the next epoch."""
    settings = RewardsSettings()
    body = set_fleet_split(
        _catalog(),
        device,
        manager=manager,
        split_bp=split_bp,
        params=settings.params(),
        now=utcnow(),
    )
    emit(
        body,
        as_json=as_json,
        text=f"split {split_bp} bp to {manager or '-'} from epoch {body['effective_epoch']}",
    )


@click.group("ledger")
def ledger_group() -> None:
    """The rewards ledger: hash-chained, signed, recomputable from the catalog."""


def _trusted_key(given: str) -> str | None:
    settings = RewardsSettings()
    if given or settings.operator_public_key:
        return given or settings.operator_public_key
    public = settings.operator_key_dir / PUBLIC_KEY
    return public.read_text().strip() if public.exists() else None


@ledger_group.command("sync")
@json_option
def sync_command(as_json: bool) -> None:
    """Record new registrations and finished batches now (closing an epoch does it too; run it
    often, e.g. from cron, so a close has little left to hash)."""
    appended = sync_ledger(_catalog(), utcnow())
    emit({"appended": appended}, as_json=as_json, text=f"{appended} records appended")


@ledger_group.command("verify")
@click.option(
    "--operator-key",
    default="",
    help="Hex public key epochs must be signed by (default: the operator key's).",
)
@click.option(
    "--from-frames",
    is_flag=True,
    help="Recompute epochs from every frame (the reference) instead of the per-bin summary.",
)
@json_option
def verify_command(operator_key: str, from_frames: bool, as_json: bool) -> None:
    """Check the chain and every signature, and recompute every record from the catalog."""
    report = verify_ledger(
        _catalog(),
        trusted_key=_trusted_key(operator_key),
        code_version=__version__,
        source="frames" if from_frames else "current",
    )
    divergence = report.first_divergence
    text = (
        f"ledger ok: {report.records} records ({', '.join(f'{k} {v}' for k, v in sorted(report.by_kind.items()))})"
        if divergence is None
        else f"ledger diverges at record {divergence.seq} ({divergence.kind} {divergence.key}): {divergence.problem}"
    )
    emit(asdict(report), as_json=as_json, text="\n".join([text, *report.notes]))
    if divergence is not None:
        raise SystemExit(1)
