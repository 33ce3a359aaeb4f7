"""Errors of the `mapbuilder` package."""

from __future__ import annotations


class MapError(Exception):
    """Base class of every fatal error raised by `mapbuilder`; per-item failures are returned as values."""


class RoadFileError(MapError):
    """A road file is missing, unreadable, or of a format the road reader does not know."""


class NoRoadsError(RoadFileError):
    """A road file holds no drivable road (inside the requested area)."""


class NetworkFormatError(RoadFileError):
    """A saved road network is damaged or was written by an incompatible version."""


class TrackError(MapError):
    """A track to match is missing, unreadable, empty or inconsistent."""


class UnknownLayerError(MapError):
    """A tile layer name that is not one of the layers the map publishes."""


class TileOutOfRangeError(MapError):
    """A tile whose zoom, column or row does not exist, or that its layer does not publish."""


class CorruptTileError(MapError):
    """A stored tile whose bytes no longer match the sha256 recorded when it was written."""


# The names the shared tile contract uses.
UnknownLayer = UnknownLayerError
CorruptTile = CorruptTileError
