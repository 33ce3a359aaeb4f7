"""Devices: registration, request authentication and revocation."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from ingest.catalog import Device
from ingest.db import Catalog
from ingest.errors import (
    AuthenticationError,
    DeviceRevokedError,
    EnrollmentRefusedError,
    NotFoundError,
)
from ingest.protocol import (
    DEVICE_HEADER,
    ProtocolError,
    Registration,
    check_registration,
    load_public_key,
    verify_request,
)


@dataclass(frozen=True)
class DeviceInfo:
    """A registered device as the API and operators see it."""

    device_id: str
    public_key: str
    registered_at: datetime
    revoked_at: datetime | None
    last_counter: int


def _info(device: Device) -> DeviceInfo:
    return DeviceInfo(
        device.device_id,
        device.public_key,
        device.registered_at,
        device.revoked_at,
        device.last_counter,
    )


def register_device(
    catalog: Catalog, registration: Registration, *, now: datetime, enrollment_token: str = ""
) -> tuple[DeviceInfo, bool]:
    """Record a device's key; return it and whether it is new. Registering again is harmless,
    but a revoked key stays revoked."""
    # Compared as bytes: compare_digest refuses str with non-ASCII characters.
    if enrollment_token and not hmac.compare_digest(
        enrollment_token.encode(), (registration.enrollment_token or "").encode()
    ):
        msg = "this deployment needs an enrolment token to register a device: ask its operator"
        raise EnrollmentRefusedError(msg)
    try:
        device_id = check_registration(load_public_key(registration.public_key), registration.proof)
    except ProtocolError as exc:
        raise AuthenticationError(str(exc)) from exc
    with catalog.session() as session:
        device = session.get(Device, device_id)
        if device is not None:
            if device.revoked_at is not None:
                msg = f"device {device_id[:12]} was revoked: create a new identity to contribute again"
                raise DeviceRevokedError(msg)
            return _info(device), False
        device = Device(
            device_id=device_id,
            public_key=registration.public_key,
            registered_at=now,
            revoked_at=None,
            last_counter=0,
        )
        session.add(device)
        return _info(device), True


def authenticate(
    catalog: Catalog,
    *,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    now: datetime,
    max_skew_s: int,
) -> DeviceInfo:
    """The device that signed this request; raise when it is unknown, revoked, forged or stale."""
    device_id = {name.lower(): value for name, value in headers.items()}.get(
        DEVICE_HEADER.lower(), ""
    )
    with catalog.session() as session:
        device = session.get(Device, device_id) if device_id else None
        if device is None:
            msg = "the request names no registered device: run `roadswarm edge init --register`"
            raise AuthenticationError(msg)
        info = _info(device)
    try:
        timestamp = verify_request(load_public_key(info.public_key), method, path, body, headers)
    except ProtocolError as exc:
        raise AuthenticationError(str(exc)) from exc
    if abs(now.timestamp() - timestamp) > max_skew_s:
        msg = (
            f"the request was signed {now.timestamp() - timestamp:+.0f} s from the server's time "
            f"(at most {max_skew_s} s allowed): set the device clock from GNSS or NTP"
        )
        raise AuthenticationError(msg)
    if info.revoked_at is not None:
        msg = f"device {device_id[:12]} was revoked by an operator: it can no longer upload"
        raise DeviceRevokedError(msg)
    return info


def revoke_device(catalog: Catalog, device_id: str, *, now: datetime) -> DeviceInfo:
    """Stop a device from uploading or committing; what it sent before stays as it is."""
    with catalog.session() as session:
        device = session.get(Device, device_id)
        if device is None:
            msg = f"no device {device_id!r}: see `roadswarm ingest devices list`"
            raise NotFoundError(msg)
        if device.revoked_at is None:
            device.revoked_at = now
        return _info(device)


def list_devices(catalog: Catalog) -> list[DeviceInfo]:
    """Every registered device, oldest first."""
    with catalog.session() as session:
        rows = session.scalars(select(Device).order_by(Device.registered_at))
        return [_info(device) for device in rows]
