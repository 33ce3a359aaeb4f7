"""Errors of the consumer API and the one table that maps them to HTTP statuses."""

from __future__ import annotations

from mapbuilder.errors import (
    CorruptTileError,
    MapError,
    TileOutOfRangeError,
    UnknownLayerError,
)


class ServeError(MapError):
    """Base class of the consumer API's errors; each message says what to do."""


class MissingKeyError(ServeError):
    """A request for keyed data without an API key."""


class BadKeyError(ServeError):
    """An API key that is unknown, malformed or revoked."""


class RateLimitedError(ServeError):
    """A key that spent its request budget; `retry_after_s` says when it may try again."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BadTileRequestError(ServeError):
    """A tile address that cannot name a tile (wrong extension, not a number)."""


class TileNotFoundError(ServeError):
    """No tile is stored there: outside the layer's coverage."""


class BadQueryError(ServeError):
    """An imagery query whose geometry, time window, heading or cursor is unusable."""


class SignedUrlError(ServeError):
    """An image URL whose signature is wrong or whose time is up."""


class FrameNotFoundError(ServeError):
    """No published frame has that id."""


class KeyNotFoundError(ServeError):
    """`roadswarm api keys revoke` named a key that does not exist."""


STATUS_CODES: dict[type[Exception], int] = {
    MissingKeyError: 401,
    BadKeyError: 401,
    SignedUrlError: 403,
    RateLimitedError: 429,
    UnknownLayerError: 404,
    TileNotFoundError: 404,
    FrameNotFoundError: 404,
    KeyNotFoundError: 404,
    TileOutOfRangeError: 400,
    BadTileRequestError: 400,
    BadQueryError: 400,
    CorruptTileError: 503,
}
