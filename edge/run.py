"""`roadswarm edge run`: capture, the privacy stage and uploads side by side, unattended.

Three threads, each with its own connection to the spool: capture (frames and fixes into the raw
queue), the privacy stage (raw queue into keyframes) and, when an API is configured, uploads
(keyframes into signed, committed batches, every `upload_interval_s`). Capture never waits for the
other two. Everything is recorded before the next step, so the process may be killed at any
instant; the next run finishes the work and duplicates nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path

from edge.anonymize import Anonymizer
from edge.capture.source import FrameSource
from edge.capture_loop import Capture, CaptureOptions, CaptureReport
from edge.client import IngestClient
from edge.drain import Drainer, DrainReport
from edge.gnss.feed import FixFeed
from edge.livespool import LiveSpool
from edge.quota import InFlight, Quota, SpaceKeeper
from edge.rawcrypt import RawCipher
from edge.spool import SpoolError
from edge.upload import UploadReport, UploadStoppedError, upload_spool

log = logging.getLogger(__name__)
IDLE_S = 0.2  # how long the privacy stage rests when nothing is ready
RETRY_WRITE_S = 5.0  # and when the spool could not take a keyframe (full disk)


@dataclass(frozen=True)
class RunOptions:
    """What to capture with and when to stop."""

    capture: CaptureOptions = field(default_factory=CaptureOptions)
    quota: Quota = field(default_factory=Quota)
    duration_s: float | None = None  # stop capturing after this long
    until_drained: bool = False  # then keep anonymizing (and uploading) until nothing is ready
    upload_interval_s: float = 60.0


@dataclass
class UploadTotals:
    """What the upload passes of this run did."""

    passes: int = 0
    batches_committed: int = 0
    frames_committed: int = 0
    frames_uploaded: int = 0
    retry_later: list[str] = field(default_factory=list)
    stopped: str | None = None

    def add(self, report: UploadReport) -> None:
        self.passes += 1
        self.batches_committed += report.batches_committed
        self.frames_committed += report.frames_committed
        self.frames_uploaded += report.frames_uploaded
        self.retry_later = report.retry_later[-1:] or self.retry_later


@dataclass
class RunReport:
    """The whole run."""

    capture: CaptureReport | None = None
    privacy: DrainReport = field(default_factory=DrainReport)
    upload: UploadTotals | None = None
    evictions: int = 0
    raw: dict[str, int] = field(default_factory=dict)
    stopped_because: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        """JSON-ready fields (asdict would turn a Counter's items into tuple keys)."""
        plain = _plain(self)
        assert isinstance(plain, dict)
        return plain


def _plain(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass
class _Shared:
    """What the threads and the main loop share."""

    stop_capture: threading.Event = field(default_factory=threading.Event)
    halt: threading.Event = field(default_factory=threading.Event)
    capture_done: threading.Event = field(default_factory=threading.Event)
    in_flight: InFlight = field(default_factory=InFlight)
    final_upload: bool = False  # drained: send what the last keyframes made before exiting
    error: BaseException | None = None


@dataclass(frozen=True)
class LiveInputs:
    """The device's parts for one run."""

    spool_dir: Path
    source: FrameSource
    feed: FixFeed
    anonymizer: Anonymizer
    cipher: RawCipher
    client: IngestClient | None = None


def run_live(inputs: LiveInputs, options: RunOptions, stop: threading.Event) -> RunReport:
    """Run until `stop` is set, capture ends (and, with `until_drained`, nothing is left to
    anonymize), or `duration_s` has passed; fatal errors of a thread are raised here."""
    started = time.monotonic()
    report = RunReport(upload=UploadTotals() if inputs.client else None)
    shared = _Shared()
    with LiveSpool(inputs.spool_dir) as spool:  # the first connection tidies what a crash left
        threads = _start_threads(inputs, options, shared, report)
        report.stopped_because = _supervise(spool, options, shared, stop, started)
        shared.final_upload = report.stopped_because == "drained"
        shared.stop_capture.set()
        shared.halt.set()
        for thread in threads:
            # An upload may be sleeping between retries; it is safe to leave behind.
            thread.join(timeout=None if thread.name != "upload" or shared.final_upload else 5)
        report.raw = spool.raw_counts()
    report.seconds = round(time.monotonic() - started, 2)
    if shared.error is not None:
        raise shared.error
    return report


def _start_threads(
    inputs: LiveInputs, options: RunOptions, shared: _Shared, report: RunReport
) -> list[threading.Thread]:
    targets: list[tuple[str, Callable[[], None]]] = [
        ("capture", lambda: _capture(inputs, options, shared, report)),
        ("privacy", lambda: _privacy(inputs, shared, report)),
    ]
    if inputs.client is not None:
        client = inputs.client
        targets.append(
            ("upload", lambda: _upload(inputs.spool_dir, client, options, shared, report))
        )
    threads = [
        threading.Thread(target=_guarded(fn, shared), name=n, daemon=True) for n, fn in targets
    ]
    for thread in threads:
        thread.start()
    return threads


def _guarded(target: Callable[[], None], shared: _Shared) -> Callable[[], None]:
    """Run a thread's work; a fatal error stops the whole run and is re-raised by it."""

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # handed to the main thread, which raises it
            shared.error = shared.error or exc
            shared.halt.set()

    return run


def _supervise(
    spool: LiveSpool, options: RunOptions, shared: _Shared, stop: threading.Event, started: float
) -> str:
    """Wait for the reason to stop."""
    while not stop.wait(IDLE_S):
        if shared.halt.is_set():
            return "error"
        if options.duration_s is not None and time.monotonic() - started >= options.duration_s:
            shared.stop_capture.set()
        if shared.capture_done.is_set():
            if not options.until_drained:
                return "capture ended"
            if spool.next_ready(skip=shared.in_flight.get()) is None and not shared.in_flight.get():
                return "drained"
    return "stopped"


def _capture(inputs: LiveInputs, options: RunOptions, shared: _Shared, report: RunReport) -> None:
    with LiveSpool(inputs.spool_dir, first=False) as spool:
        keeper = SpaceKeeper(spool, options.quota, shared.in_flight)
        capture = Capture(
            inputs.source,
            inputs.feed,
            spool,
            inputs.cipher,
            keeper,
            options.capture,
            shared.stop_capture,
        )
        try:
            report.capture = capture.run()
        finally:
            report.evictions = keeper.evictions
            shared.capture_done.set()


def _privacy(inputs: LiveInputs, shared: _Shared, report: RunReport) -> None:
    with LiveSpool(inputs.spool_dir, first=False) as spool:
        drainer = Drainer(spool, inputs.cipher, inputs.anonymizer, shared.in_flight)
        report.privacy = drainer.report
        while not shared.halt.is_set():
            started = time.perf_counter()
            if drainer.drain_some():
                drainer.report.anonymize_s += time.perf_counter() - started
                continue
            shared.halt.wait(RETRY_WRITE_S if drainer.report.write_failures else IDLE_S)
            drainer.report.write_failures = 0


def _upload(
    spool_dir: Path, client: IngestClient, options: RunOptions, shared: _Shared, report: RunReport
) -> None:
    totals = report.upload
    assert totals is not None
    with LiveSpool(spool_dir, first=False) as spool:
        while True:
            try:
                totals.add(upload_spool(spool, client))
            except UploadStoppedError as exc:
                totals.stopped = str(exc)
                return
            except SpoolError as exc:  # a full disk: the next pass tries again
                log.warning("upload pass failed: %s", exc)
            if shared.halt.wait(options.upload_interval_s):
                if shared.final_upload:
                    totals.add(upload_spool(spool, client))
                return
