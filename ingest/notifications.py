"""MinIO bucket notifications as a second trigger of validation.

MinIO's webhook (or Redis/AMQP) target sends an S3 event for each new object. A frame object
that arrives for a committed frame still waiting for validation is queued at once; anything else
is ignored, since the commit queues what it catalogs. Both triggers may fire for one frame: the
validation stage moves a frame only from `received`, so the second one does nothing.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus

from sqlalchemy import select

from ingest.catalog import Frame, FrameState
from ingest.db import Catalog

FRAME_KEY = re.compile(r"^frames/(?P<device>[0-9a-f]{64})/(?P<frame>[0-9a-f]{64})\.jpg$")
MAX_RECORDS = 1000


def created_keys(event: dict[str, Any]) -> list[str]:
    """Object keys of the ObjectCreated records of an S3 event (malformed records are skipped)."""
    keys = []
    records = event.get("Records")
    for record in records[:MAX_RECORDS] if isinstance(records, list) else []:
        try:
            if str(record["eventName"]).startswith("s3:ObjectCreated"):
                keys.append(unquote_plus(str(record["s3"]["object"]["key"])))
        except (KeyError, TypeError):
            continue
    return keys


def frames_to_queue(catalog: Catalog, event: dict[str, Any]) -> list[str]:
    """Frames named by the event's new objects that are cataloged and still `received`."""
    wanted = set()
    for key in created_keys(event):
        match = FRAME_KEY.match(key)
        if match:
            wanted.add((match["frame"], match["device"]))
    if not wanted:
        return []
    with catalog.session() as session:
        rows = session.execute(
            select(Frame.frame_id, Frame.device_id).where(
                Frame.frame_id.in_(sorted(frame for frame, _ in wanted)),
                Frame.state == FrameState.RECEIVED,
            )
        ).all()
        return sorted(frame for frame, device in rows if (frame, device) in wanted)
