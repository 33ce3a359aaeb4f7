"""Errors of the simulator."""

from __future__ import annotations

from roadswarm.errors import UserInputError


class NoRoadsError(UserInputError):
    """The OSM extract holds no drivable road inside the requested area."""


class WorldFormatError(UserInputError):
    """A world folder is missing, damaged or written by an incompatible version."""


class RouteError(UserInputError):
    """No route of the requested length can be driven in the world."""
