"""Malformed files given to commands: `edge process`'s calibration, privacy zones, video and
options, GPX files that are not GPX, and the files other commands read (proofs, road networks,
tracks, device keys). Each case writes its file into a folder and gives the command's arguments;
the command must stop with one line saying what is wrong, before writing anything."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.reliability.bad_corpus import BadCase
from tests.reliability.bad_gnss import GPX_FILE_CASES

EDGE = "edge process: calibration, zones, video, options"
CLI = "other commands' files"
REFUSED = "one line on stderr, non-zero exit; nothing spooled or written"
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
Args = Callable[[Path, Path], list[str]]


def process(folder: Path, drive: Path, **given: str) -> list[str]:
    """`edge process` of the drive into `folder/spool`, with files or options replaced."""
    options = {"--video": str(drive / "video.mp4"), "--gpx": str(drive / "track.gpx"), **given}
    args = ["edge", "process", "--spool", str(folder / "spool"), "--trim-m", "0"]
    return args + [part for pair in options.items() for part in pair]


def _file(folder: Path, name: str, data: bytes) -> str:
    path = folder / name
    path.write_bytes(data)
    return str(path)


def _calibration(drive: Path, **changes: object) -> bytes:
    data = json.loads((drive / "calibration.json").read_text())
    return json.dumps({**data, **changes}).encode()


def _with(option: str, name: str, data: Callable[[Path], bytes]) -> Args:
    """Arguments giving `option` a file `name` holding `data(drive)`."""
    return lambda folder, drive: process(
        folder, drive, **{option: _file(folder, name, data(drive))}
    )


def _zone(*rings: list[list[float]]) -> Callable[[Path], bytes]:
    features = [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [r]}} for r in rings
    ]
    return lambda _: json.dumps({"type": "FeatureCollection", "features": features}).encode()


BOW_TIE = [[24.94, 60.17], [24.95, 60.18], [24.95, 60.17], [24.94, 60.18], [24.94, 60.17]]
OFF_EARTH = [[24.94, 160.17], [24.95, 160.17], [24.95, 160.18], [24.94, 160.17]]


def _edge(name: str, says: str, make: Args) -> BadCase:
    return BadCase(EDGE, name, says, REFUSED, make)


EDGE_FILE_CASES = [
    _edge(
        "calibration not UTF-8",
        "as a calibration",
        _with("--calibration", "cal.json", lambda _: b"\xff\xfe\x00{"),
    ),
    _edge(
        "calibration nested 100 000 deep",
        "as a calibration",
        _with("--calibration", "cal.json", lambda _: DEEP_JSON),
    ),
    _edge(
        "calibration of wrong types",
        "as a calibration",
        _with("--calibration", "cal.json", lambda d: _calibration(d, camera_matrix="wide")),
    ),
    _edge(
        "calibration pitch NaN",
        "as a calibration",
        _with("--calibration", "cal.json", lambda d: _calibration(d, pitch_deg=float("nan"))),
    ),
    _edge(
        "calibration pitch 80 degrees",
        "pitch_deg",
        _with("--calibration", "cal.json", lambda d: _calibration(d, pitch_deg=80)),
    ),
    _edge(
        "privacy zone a bow tie",
        "is not a valid polygon",
        _with("--privacy-zones", "z.geojson", _zone(BOW_TIE)),
    ),
    _edge(
        "privacy zones with no polygon",
        "holds no polygons",
        _with("--privacy-zones", "z.geojson", _zone()),
    ),
    _edge(
        "privacy zone off the Earth",
        "leaves the Earth",
        _with("--privacy-zones", "z.geojson", _zone(OFF_EARTH)),
    ),
    _edge(
        "privacy zones not JSON",
        "cannot read privacy zones",
        _with("--privacy-zones", "z.geojson", lambda _: b"\x00PK\x03\x04"),
    ),
    _edge(
        "video of random bytes",
        "as a video",
        _with("--video", "v.mp4", lambda _: bytes(range(256)) * 64),
    ),
    _edge(
        "video cut short",
        "as a video",
        _with("--video", "v.mp4", lambda d: (d / "video.mp4").read_bytes()[:300_000]),
    ),
    _edge(
        "video start not a time",
        "is not an ISO 8601 time",
        lambda f, d: process(f, d, **{"--video-start": "yesterday"}),
    ),
    _edge(
        "video start without a time zone",
        "has no timezone",
        lambda f, d: process(f, d, **{"--video-start": "2026-06-01T09:05:00"}),
    ),
    _edge(
        "GNSS log without a usable fix",
        "has no usable fix",
        _with(
            "--gpx",
            "t.gpx",
            lambda _: b'<gpx><trk><trkseg><trkpt lat="x" lon="y"/></trkseg></trk></gpx>',
        ),
    ),
]


def _as_file(case: BadCase) -> BadCase:
    """A GPX case given to `edge process` as its --gpx file."""

    def contents(_: Path) -> bytes:
        data: bytes = case.make()
        return data

    return BadCase(
        case.entry, case.name, case.says, case.recorded, _with("--gpx", "t.gpx", contents)
    )


GPX_AS_FILES = [_as_file(case) for case in GPX_FILE_CASES]


def _proof(data: bytes) -> Args:
    return lambda folder, _: ["rewards", "verify-proof", _file(folder, "proof.json", data)]


def _roads(name: str, data: bytes) -> Args:
    return lambda folder, _: [
        "map",
        "roads",
        "import",
        _file(folder, name, data),
        "--out",
        str(folder / "net.geojson"),
    ]


def _track(name: str, data: bytes) -> Args:
    return lambda folder, _: [
        "map",
        "match",
        "--roads",
        str(folder / "none.geojson"),
        "--track",
        _file(folder, name, data),
    ]


def _identity(data: bytes, mode: int) -> Args:
    def make(folder: Path, _: Path) -> list[str]:
        keys = folder / "identity"
        keys.mkdir()
        (keys / "device.key").write_bytes(data)
        (keys / "device.key").chmod(mode)
        spool = str(folder / "spool")
        return [
            "edge",
            "upload",
            "--api",
            "http://127.0.0.1:9",
            "--identity-dir",
            str(keys),
            "--spool",
            spool,
        ]

    return make


FUTURE_NETWORK = json.dumps(
    {"type": "FeatureCollection", "features": [], "roadswarm-road-network": {"format_version": 99}}
).encode()
PEM = b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
CLI_FILE_CASES = [
    BadCase(CLI, "proof nested 100 000 deep", "is not a proof", REFUSED, _proof(DEEP_JSON)),
    BadCase(CLI, "proof not UTF-8", "is not a proof", REFUSED, _proof(b"\xff\xfe{}")),
    BadCase(
        CLI,
        "proof of wrong types",
        "is not a proof",
        REFUSED,
        _proof(b'{"statement": 5, "proof": "x"}'),
    ),
    BadCase(
        CLI,
        "roads file of random bytes",
        "cannot read",
        REFUSED,
        _roads("roads.gpkg", bytes(range(256))),
    ),
    BadCase(
        CLI,
        "roads JSON nested 100 000 deep",
        "cannot read",
        REFUSED,
        _roads("roads.json", DEEP_JSON),
    ),
    BadCase(
        CLI,
        "road network from a future version",
        "format version 99",
        REFUSED,
        _roads("saved.geojson", FUTURE_NETWORK),
    ),
    BadCase(
        CLI,
        "track CSV not UTF-8",
        "cannot read",
        REFUSED,
        _track("t.csv", b"lon,lat\n\xff\xfe,1\n"),
    ),
    BadCase(
        CLI,
        "track CSV time beyond year 9999",
        "is not a time",
        REFUSED,
        _track("t.csv", b"lon,lat,time\n24,60,1e20\n"),
    ),
    BadCase(
        CLI,
        "track GPX time out of range",
        "out of range",
        REFUSED,
        _track(
            "t.gpx",
            b'<gpx version="1.1"><trk><trkseg><trkpt lat="60" lon="24"><time>0001-01-01T00:00:00+05:00</time></trkpt></trkseg></trk></gpx>',
        ),
    ),
    BadCase(
        CLI,
        "track going back in time",
        "time goes backwards",
        REFUSED,
        _track("t.csv", b"lon,lat,time\n24,60,2026-01-01T00:00:10Z\n24,60,2026-01-01T00:00:00Z\n"),
    ),
    BadCase(
        CLI, "device key that is not a key", "cannot read the key", REFUSED, _identity(PEM, 0o600)
    ),
    BadCase(CLI, "device key others can read", "readable", REFUSED, _identity(PEM, 0o644)),
]
