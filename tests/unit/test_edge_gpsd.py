"""gpsd's JSON reports (as documented in gpsd_json(5)) to fixes: epochs merged, quality carried,
jamming flagged, bad reports kept as values; the client reconnects when gpsd goes away."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from edge.gnss.feed import GpsdAddressError, GpsdFeed, parse_gpsd_address
from edge.gnss.fix import BadRecord, Fix, FixQuality
from edge.gnss.gpsd import GpsdParser

T0 = "2026-06-01T10:56:03.000Z"
T1 = "2026-06-01T10:56:04.000Z"


def tpv(time: str, **fields: Any) -> str:
    """A TPV report of a 3D fix at `time`."""
    report = {"class": "TPV", "device": "/dev/ttyACM0", "mode": 3, "time": time}
    report |= {"lat": 60.17, "lon": 24.94, "altHAE": 21.5, "speed": 8.2, "track": 12.5}
    return json.dumps(report | fields)


def feed_all(parser: GpsdParser, lines: list[str]) -> list[Fix | BadRecord]:
    """Everything the lines complete, then what a pause in the stream completes."""
    return [r for line in lines for r in parser.feed(line)] + parser.flush()


def test_tpv_sky_and_gst_of_an_epoch_make_one_fix() -> None:
    """Position and velocity from TPV, HDOP and satellites used from SKY, accuracy from GST."""
    sky = {"class": "SKY", "time": T0, "hdop": 1.3, "uSat": 9, "satellites": []}
    gst = {"class": "GST", "time": T0, "lat": 1.2, "lon": 1.6, "alt": 2.5}
    (fix,) = feed_all(GpsdParser(), [tpv(T0), json.dumps(sky), json.dumps(gst)])
    assert isinstance(fix, Fix) and fix.accuracy_m == pytest.approx(2.0)
    assert fix == (
        Fix(
            time=datetime(2026, 6, 1, 10, 56, 3, tzinfo=UTC),
            lon=24.94,
            lat=60.17,
            altitude_m=21.5,
            speed_mps=8.2,
            course_deg=12.5,
            hdop=1.3,
            satellites=9,
            fix_mode=3,
            accuracy_m=fix.accuracy_m,
        )
    )


def test_an_epoch_ends_when_the_next_begins_and_dribbled_tpvs_merge() -> None:
    """Two TPVs of one time (the receiver dribbling) are one fix, handed over at the next time."""
    parser = GpsdParser()
    assert parser.feed(tpv(T0, speed=None, track=None)) == []
    assert parser.feed(tpv(T0, speed=3.0, track=90.0)) == []
    (fix,) = parser.feed(tpv(T1))
    assert isinstance(fix, Fix) and (fix.speed_mps, fix.course_deg) == (3.0, 90.0)
    (last,) = parser.flush()
    assert isinstance(last, Fix) and last.time.second == 4


def test_the_next_epochs_sky_is_not_taken_for_this_one() -> None:
    """A SKY stamped with the epoch's own time wins over a later one that arrived first."""
    own = {"class": "SKY", "time": T0, "hdop": 1.1, "uSat": 10}
    later = {"class": "SKY", "time": T1, "hdop": 6.0, "uSat": 3}
    (fix, _) = feed_all(GpsdParser(), [json.dumps(own), tpv(T0), json.dumps(later), tpv(T1)])
    assert isinstance(fix, Fix) and (fix.hdop, fix.satellites) == (1.1, 10)


def test_jamming_reported_by_the_receiver_makes_the_fix_unusable() -> None:
    """A u-blox jamming indicator at the limit marks interference; below it, or unset, does not."""
    parser = GpsdParser(jam_limit=100)
    jammed, quiet, unset = feed_all(
        parser,
        [
            tpv(T0, jam=180),
            tpv(T1, jam=12),
            tpv("2026-06-01T10:56:05.000Z", jam=-1),
        ],
    )
    assert isinstance(jammed, Fix) and isinstance(quiet, Fix) and isinstance(unset, Fix)
    assert FixQuality().problem(jammed) == "the receiver reported jamming or spoofing"
    assert FixQuality().problem(quiet) is None and FixQuality().problem(unset) is None


def test_reports_without_a_usable_fix_are_kept_as_bad_records() -> None:
    """No fix, garbage, gpsd errors, positions out of range and time going back are counted."""
    lines = [
        json.dumps({"class": "TPV", "mode": 1}),
        "{not json",
        json.dumps({"class": "ERROR", "message": "Unrecognized request"}),
        tpv(T1),
        tpv(T0),
        tpv("2026-06-01T10:56:05.000Z", lat=95.0),
    ]
    reports = feed_all(GpsdParser(), lines)
    reasons = [r.reason for r in reports if isinstance(r, BadRecord)]
    assert [type(r).__name__ for r in reports].count("Fix") == 1
    assert reasons[0] == "receiver reported no fix (TPV mode 1)"
    assert reasons[1] == "not gpsd JSON"
    assert reasons[2] == "gpsd error: Unrecognized request"
    assert reasons[3].startswith("time goes backwards")
    assert "out of range" in reasons[4]


def test_gpsd_addresses_are_host_and_port() -> None:
    """HOST:PORT, HOST alone (port 2947), and a clear error otherwise."""
    assert parse_gpsd_address("127.0.0.1:2948") == ("127.0.0.1", 2948)
    assert parse_gpsd_address("gps.local") == ("gps.local", 2947)
    with pytest.raises(GpsdAddressError, match="HOST:PORT"):
        parse_gpsd_address("host:port")


@pytest.fixture
def flaky_gpsd() -> Iterator[tuple[int, threading.Event]]:
    """A loopback peer speaking gpsd's JSON that drops the first connection after one epoch and
    serves the next epochs on the second, as a restarted gpsd would."""
    server = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        for times in ((T0,), (T1, "2026-06-01T10:56:05.000Z")):
            connection, _ = server.accept()
            with connection:
                assert connection.recv(100).startswith(b"?WATCH=")
                connection.sendall(b'{"class":"VERSION","release":"3.22"}\n')
                connection.sendall(b"".join(tpv(t).encode() + b"\n" for t in times))
                time.sleep(0.2)
        done.wait(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], done
    done.set()
    server.close()


def test_the_client_reconnects_when_gpsd_goes_away(flaky_gpsd: tuple[int, threading.Event]) -> None:
    """Fixes keep coming after the connection drops: the feed reconnects by itself."""
    port, _ = flaky_gpsd
    feed = GpsdFeed("127.0.0.1", port)
    fixes: list[Fix] = []
    deadline = time.monotonic() + 10
    while len(fixes) < 3 and time.monotonic() < deadline:
        fixes += feed.take(0.5)
    feed.close()
    assert [f.time.second for f in fixes] == [3, 4, 5]
    assert feed.connections == 2 and not feed.ended
