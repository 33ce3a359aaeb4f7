"""Who is asking: the API key from the `X-API-Key` header (or `?key=` for map clients).

Admitting a key means authenticating it and spending one request from its rate limit. Both are
answered from this process's memory most of the time (key_cache.py, leases.py); `admit_cached`
does only that and never waits for the catalog, so async code can try it before a thread hop.
"""

from __future__ import annotations

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, APIKeyQuery

from mapbuilder.serve.errors import MissingKeyError
from mapbuilder.serve.keys import ApiKey
from mapbuilder.serve.services import ServeServices

KEY_HEADER = "X-API-Key"
KEY_QUERY = "key"
# Declared for OpenAPI (clients and schemathesis see where a key goes); `admit` does the checking.
KEYED = [
    Security(
        APIKeyHeader(
            name=KEY_HEADER,
            scheme_name="ApiKeyHeader",
            description="An API key from `roadswarm api keys create`.",
            auto_error=False,
        )
    ),
    Security(
        APIKeyQuery(
            name=KEY_QUERY,
            scheme_name="ApiKeyQuery",
            description="The same key as ?key=, for map clients that cannot set headers.",
            auto_error=False,
        )
    ),
]


def services_of(request: Request) -> ServeServices:
    """The services the app was built with."""
    services: ServeServices = request.app.state.services
    return services


def presented_key(request: Request) -> str | None:
    """The key the request carries, header first; None when it carries none."""
    return request.headers.get(KEY_HEADER) or request.query_params.get(KEY_QUERY) or None


def admit(services: ServeServices, presented: str | None) -> ApiKey:
    """The caller's live key, one request spent from its rate limit; 401 or 429 otherwise."""
    if presented is None:
        msg = (
            f"this needs an API key: send it in the {KEY_HEADER} header "
            f"(map clients may add ?{KEY_QUERY}=...); an operator creates keys with `roadswarm api keys create`"
        )
        raise MissingKeyError(msg)
    key = services.keys.authenticate(presented)
    services.leases.spend(key)
    return key


def admit_cached(services: ServeServices, presented: str | None) -> ApiKey | None:
    """As `admit`, from memory alone; None (nothing spent) when only `admit` can answer."""
    if presented is None:
        return None
    key = services.keys.cached(presented)
    if key is None or not services.leases.spend_local(key):
        return None
    return key


def require_key(request: Request) -> ApiKey:
    """`admit` for a request (may read the catalog: call it from a thread in async code)."""
    return admit(services_of(request), presented_key(request))
