"""Malformed GNSS logs: damaged NMEA lines and GPX points (each mixed into a good log, where it
must cost only itself), and GPX files that are not GPX at all (refused whole, before anything is
spooled)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pynmea2

from tests.reliability.bad_corpus import BadCase

START = datetime(2026, 5, 17, 9, 0, 0, tzinfo=UTC)
GOOD_FIXES = 12
NMEA = "edge process: NMEA log"
GPX = "edge process: GPX log"
BAD_RECORD = "bad record (location, reason) in the log; counted in the --json report"


def rmc(at: datetime, talker: str = "GP", **changes: str) -> bytes:
    """An RMC sentence at `at` (valid unless `changes` replace some of its fields)."""
    fields = {
        "time": f"{at:%H%M%S}.{at.microsecond // 10_000:02d}",
        "status": "A",
        "lat": "6010.200",
        "ns": "N",
        "lon": "02456.400",
        "ew": "E",
        "knots": "19.4",
        "course": "45.0",
        "date": f"{at:%d%m%y}",
    }
    fields.update(changes)
    return str(pynmea2.RMC(talker, "RMC", (*fields.values(), "", "", "A"))).encode()


def gga(at: datetime, quality: str) -> bytes:
    """A GGA sentence at `at` with the given fix quality."""
    fields = (f"{at:%H%M%S}.50", "6010.200", "N", "02456.400", "E", quality, "08", "0.9")
    return str(pynmea2.GGA("GP", "GGA", (*fields, "20.0", "M", "0.0", "M", "", ""))).encode()


def good_nmea() -> list[bytes]:
    """One RMC a second."""
    return [rmc(START + timedelta(seconds=s)) for s in range(GOOD_FIXES)]


def _between(second: int) -> datetime:
    return START + timedelta(seconds=second, milliseconds=500)


def _bad_checksum() -> bytes:
    line = rmc(_between(1))
    return line[:-2] + (b"00" if line[-2:] != b"00" else b"11")


def _nmea(name: str, says: str, line: bytes, *, after: int) -> BadCase:
    """A case whose line goes right after the good fix of second `after`."""
    return BadCase(NMEA, name, says, BAD_RECORD, lambda: (after, line))


NMEA_CASES = [
    BadCase(
        NMEA, "wrong checksum", "checksum does not match", BAD_RECORD, lambda: (1, _bad_checksum())
    ),
    _nmea("sentence cut short", "checksum missing", rmc(_between(2))[:31], after=2),
    _nmea("non-ASCII bytes", "non-ASCII", b"$GPRMC,\xe9\xff\xfe,A,6010.200,N*7F", after=2),
    _nmea("NUL bytes", "not a valid NMEA sentence", b"\x00" * 40, after=2),
    _nmea(
        "10 KB of garbage on one line",
        "not a valid NMEA sentence",
        b"$GPRMC," + b"9," * 5000,
        after=2,
    ),
    _nmea("hour 25", "hour must be in 0..23", rmc(_between(3), time="256100.00"), after=3),
    _nmea("32 January", "not ddmmyy", rmc(_between(3), date="320126"), after=3),
    _nmea("latitude 95 degrees", "out of range", rmc(_between(4), lat="9500.000"), after=4),
    _nmea("hemisphere X", "out of range or not N/S", rmc(_between(5), ns="X"), after=5),
    _nmea(
        "receiver says no fix",
        "receiver reported no fix (RMC status V)",
        rmc(_between(6), status="V"),
        after=6,
    ),
    _nmea(
        "GGA with quality 0",
        "receiver reported no fix (GGA quality 0)",
        gga(_between(7), "0"),
        after=7,
    ),
    _nmea(
        "time travels back 100 s",
        "time goes backwards",
        rmc(START - timedelta(seconds=100)),
        after=8,
    ),
    _nmea("time repeats", "time repeats", rmc(START + timedelta(seconds=9)), after=9),
    _nmea("BeiDou talker", "talker BD is not used", rmc(_between(10), talker="BD"), after=10),
    _nmea("speed not a number", "is not a number", rmc(_between(10), knots="fast"), after=10),
]


def nmea_log(cases: list[BadCase]) -> bytes:
    """The good log with every case's line after its good fix, CRLF-terminated like a receiver's."""
    placed = [case.make() for case in cases]
    lines = []
    for second, good in enumerate(good_nmea()):
        lines += [good, *(line for after, line in placed if after == second)]
    return b"".join(line + b"\r\n" for line in lines)


def good_point(second: int) -> str:
    """A GPX track point one second after another."""
    at = START + timedelta(seconds=second)
    return f'<trkpt lat="60.17" lon="{24.94 + second * 1e-4:.4f}"><time>{at:%Y-%m-%dT%H:%M:%SZ}</time></trkpt>'


def gpx_document(points: list[str]) -> bytes:
    """A GPX 1.1 file of one track of these points."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">'
        f"<trk><trkseg>{''.join(points)}</trkseg></trk></gpx>"
    ).encode()


def _point(name: str, says: str, point: str) -> BadCase:
    return BadCase(GPX, name, says, BAD_RECORD, lambda: point)


T = "<time>2026-05-17T09:00:05.5Z</time>"
GPX_POINT_CASES = [
    _point(
        "latitude not a number",
        "lat 'north' is not a number",
        f'<trkpt lat="north" lon="24.9">{T}</trkpt>',
    ),
    _point("latitude 95", "position out of range", f'<trkpt lat="95" lon="24.9">{T}</trkpt>'),
    _point("no longitude", "no lon attribute", f'<trkpt lat="60.17">{T}</trkpt>'),
    _point("no time", "no time", '<trkpt lat="60.17" lon="24.9"></trkpt>'),
    _point(
        "time not a time",
        "is not an ISO 8601 time",
        '<trkpt lat="60.17" lon="24.9"><time>yesterday</time></trkpt>',
    ),
    _point(
        "time out of range",
        "out of range",
        '<trkpt lat="60.17" lon="24.9"><time>0001-01-01T00:00:00+05:00</time></trkpt>',
    ),
    _point(
        "satellites not a count",
        "is not a count of satellites",
        f'<trkpt lat="60.17" lon="24.9">{T}<sat>many</sat></trkpt>',
    ),
    _point(
        "receiver says no fix",
        "receiver reported no fix",
        f'<trkpt lat="60.17" lon="24.9">{T}<fix>none</fix></trkpt>',
    ),
    _point(
        "time travels back",
        "time goes backwards",
        '<trkpt lat="60.17" lon="24.9"><time>2026-05-17T08:00:00Z</time></trkpt>',
    ),
]


def gpx_with_bad_points(cases: list[BadCase]) -> bytes:
    """The good points with each case's point after the third."""
    points = [good_point(second) for second in range(GOOD_FIXES)]
    for offset, case in enumerate(cases):
        points.insert(3 + offset, case.make())
    return gpx_document(points)


REFUSED_WHOLE = "one line on stderr, exit 1; nothing spooled"
LAUGHS = "".join(f'<!ENTITY l{i + 1} "{f"&l{i};" * 10}">' for i in range(9))
GPX_FILE_CASES = [
    BadCase(
        GPX,
        "not XML at all",
        "is not a GPX file",
        REFUSED_WHOLE,
        lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
    ),
    BadCase(
        GPX,
        "XML cut short",
        "is not a GPX file",
        REFUSED_WHOLE,
        lambda: gpx_document([good_point(0)])[:150],
    ),
    BadCase(
        GPX,
        "KML instead of GPX",
        "its root element is <kml>",
        REFUSED_WHOLE,
        lambda: b"<kml><Document/></kml>",
    ),
    BadCase(
        GPX,
        "entity expansion bomb (billion laughs)",
        "is not a GPX file",
        REFUSED_WHOLE,
        lambda: (
            f'<?xml version="1.0"?><!DOCTYPE gpx [<!ENTITY l0 "lol">{LAUGHS}]><gpx>&l9;</gpx>'.encode()
        ),
    ),
    BadCase(
        GPX,
        "external entity (XXE)",
        "is not a GPX file",
        REFUSED_WHOLE,
        lambda: (
            b'<?xml version="1.0"?><!DOCTYPE gpx [<!ENTITY x SYSTEM "file:///etc/passwd">]><gpx>&x;</gpx>'
        ),
    ),
    BadCase(
        GPX,
        "not UTF-8",
        "is not a GPX file",
        REFUSED_WHOLE,
        lambda: gpx_document([good_point(0)]).replace(b"test", b"\xff\xfe"),
    ),
]
