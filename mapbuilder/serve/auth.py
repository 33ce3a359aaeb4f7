"""Who is asking: the API key from the `X-API-Key` header (or `?key=` for map clients)."""

from __future__ import annotations

from fastapi import Request

from mapbuilder.serve.errors import MissingKeyError
from mapbuilder.serve.keys import ApiKey, authenticate
from mapbuilder.serve.ratelimit import take_token
from mapbuilder.serve.services import ServeServices

KEY_HEADER = "X-API-Key"
KEY_QUERY = "key"


def services_of(request: Request) -> ServeServices:
    """The services the app was built with."""
    services: ServeServices = request.app.state.services
    return services


def presented_key(request: Request) -> str | None:
    """The key the request carries, header first; None when it carries none."""
    return request.headers.get(KEY_HEADER) or request.query_params.get(KEY_QUERY) or None


def require_key(request: Request) -> ApiKey:
    """The caller's live key, one request spent from its rate limit; 401 or 429 otherwise."""
    presented = presented_key(request)
    if presented is None:
        msg = (
            f"this needs an API key: send it in the {KEY_HEADER} header "
            f"(map clients may add ?{KEY_QUERY}=...); an operator creates keys with `roadswarm api keys create`"
        )
        raise MissingKeyError(msg)
    services = services_of(request)
    key = authenticate(services.catalog, presented)
    take_token(services.catalog, key.key_id)
    return key
