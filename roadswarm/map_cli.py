"""`roadswarm map roads import` and `roadswarm map match`: the road network and map matching."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from ingest.catalog import utcnow
from ingest.services import open_catalog
from ingest.settings import IngestSettings
from mapbuilder.catalog import store_network
from mapbuilder.errors import RoadFileError, TrackError
from mapbuilder.matching.matcher import MapMatcher
from mapbuilder.matching.results import MatchResult
from mapbuilder.roads import RoadNetwork, dump_network, read_network
from mapbuilder.settings import MatchSettings
from mapbuilder.tracks import check_time_order, read_track
from roadswarm.errors import UserInputError
from roadswarm.files import write_atomically
from roadswarm.lazy_group import LazyGroup
from roadswarm.output import emit, json_option
from roadswarm.sim.cli import parse_bbox

NETWORK_SUFFIXES = (".geojson", ".json")


@contextmanager
def _user_input() -> Iterator[None]:
    """Bad road or track files and bad settings are the user's input: exit status 2."""
    try:
        yield
    except (RoadFileError, TrackError) as exc:
        raise UserInputError(str(exc)) from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        msg = f"bad ROADSWARM_MATCH_* setting ({problems}): fix or unset it"
        raise UserInputError(msg) from exc


def network_summary(network: RoadNetwork) -> dict[str, Any]:
    """What an imported network holds, for people and scripts."""
    return {
        "source": network.source,
        "segments": len(network.segments),
        "nodes": network.node_count,
        "directed_edges": int(network.graph.edge_usable.sum()),
        "one_way_segments": sum(s.oneway for s in network.segments),
        "length_km": round(float(network.length_m.sum()) / 1000, 3),
        "road_classes": dict(Counter(s.road_class for s in network.segments).most_common()),
    }


@click.group(
    "map",
    cls=LazyGroup,
    lazy={
        "tiles": "roadswarm.map_tiles_cli:tiles_group",
        "layers": "roadswarm.map_layers_cli:layers_group",
        "export": "roadswarm.map_layers_cli:export_command",
    },
)
def map_group() -> None:
    """The road network and map matching of tracks to its segments."""


@map_group.group("roads")
def roads_group() -> None:
    """Road networks from OSM extracts or vector files of lines."""


@roads_group.command("import")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Save the network here (.geojson) for `map match --roads`.",
)
@click.option("--bbox", default=None, help="Only roads touching west,south,east,north (degrees).")
@click.option(
    "--to-catalog",
    is_flag=True,
    help="Make this the catalog's network (ROADSWARM_DATABASE_URL): the matching stage uses it.",
)
@json_option
def import_command(
    source: Path, out: Path | None, bbox: str | None, to_catalog: bool, as_json: bool
) -> None:
    """Import drivable roads from an OSM extract (.osm.pbf, .osm) or a vector file (GeoPackage,
    GeoJSON, Shapefile) of LineStrings, split at intersections into segments with stable ids."""
    if out is not None and out.suffix.lower() not in NETWORK_SUFFIXES:
        msg = f"--out {out}: a saved network is GeoJSON, name it with a .geojson suffix"
        raise UserInputError(msg)
    with _user_input():
        network = read_network(source, bbox=parse_bbox(bbox))
    if out is not None:
        write_atomically(out, dump_network(network))
    stored = None
    if to_catalog:
        catalog = open_catalog(IngestSettings())
        stored = asdict(store_network(catalog, network, now=utcnow()))
        catalog.dispose()
    summary = {**network_summary(network), "out": str(out) if out else None, "catalog": stored}
    text = (
        f"{summary['segments']} segments ({summary['length_km']} km, "
        f"{summary['one_way_segments']} one-way) joining {summary['nodes']} nodes"
        + (f", saved to {out}" if out else "")
        + (f", in the catalog ({stored['retired']} retired)" if stored else "")
    )
    emit(summary, as_json=as_json, text=text)


def match_document(result: MatchResult) -> dict[str, Any]:
    """The `--json` answer of `map match`: one entry per input point (null: unmatched), and per
    sequence its matched paths with the covered stretch of each segment."""
    points = [
        None if p is None else {"index": i, **p._asdict()} for i, p in enumerate(result.points)
    ]
    sequences = []
    for k, seq in enumerate(result.sequences):
        paths = [
            {
                "first_index": path.first_index,
                "last_index": path.last_index,
                "segments": [asdict(iv) for iv in path.intervals],
            }
            for path in result.paths
            if path.sequence == k
        ]
        sequences.append(
            {
                "index": k,
                "starts_because": seq.starts_because,
                "points": len(seq.indices),
                "paths": paths,
            }
        )
    covered = {iv.segment_id for path in result.paths for iv in path.intervals}
    summary = {
        "points": len(result.points),
        "matched": sum(p is not None for p in result.points),
        "sequences": len(result.sequences),
        "paths": len(result.paths),
        "segments": len(covered),
    }
    return {"points": points, "sequences": sequences, "summary": summary}


@map_group.command("match")
@click.option(
    "--roads",
    "roads",
    type=click.Path(path_type=Path),
    required=True,
    help="A saved network, an OSM extract or a vector file of roads.",
)
@click.option(
    "--track",
    "track",
    type=click.Path(path_type=Path),
    required=True,
    help="GPX, or CSV with lon,lat[,time,heading,speed] columns.",
)
@json_option
def match_command(roads: Path, track: Path, as_json: bool) -> None:
    """Match a track to road segments (hidden Markov model): per point the segment, direction,
    offset along it and distance from it; per sequence the stretch of each segment covered."""
    with _user_input():
        settings = MatchSettings()
        points = read_track(track)
        check_time_order(points, track)
        network = read_network(roads)
    result = MapMatcher(network, settings=settings).match_points(points)
    document = match_document(result)
    s = document["summary"]
    text = (
        f"matched {s['matched']} of {s['points']} points in {s['sequences']} sequence(s), "
        f"{s['paths']} path(s), {s['segments']} segments covered"
    )
    if s["points"] and not s["matched"]:
        text += (
            f"; no point lies within {settings.search_radius_m:g} m of a road: is the track "
            "inside the area of the road file?"
        )
    emit(document, as_json=as_json, text=text)
