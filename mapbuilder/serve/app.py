"""The consumer API application: `create_app(services)` for tests and embedding, and the factory
`app_from_settings` that `roadswarm serve` runs in each uvicorn worker process."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from mapbuilder.serve import account_api, imagery_api, tiles_api, web
from mapbuilder.serve.auth import KEY_HEADER
from mapbuilder.serve.fastpath import CachedTileFastPath
from mapbuilder.serve.handlers import install_handlers
from mapbuilder.serve.lifecycle import lifespan
from mapbuilder.serve.services import ServeServices, services_from_settings

DESCRIPTION = (
    "Map tiles (imagery, freshness, coverage) and dashcam imagery of the roadswarm map. "
    f"Send your API key in the {KEY_HEADER} header, or as ?key= from map clients. "
    "Tiles cost map credits per tile, imagery per frame returned; see /v1/account/usage."
)


def create_app(services: ServeServices) -> FastAPI:
    """The consumer API and web viewer over the given catalog, store and signer."""
    app = FastAPI(
        title="roadswarm map API", version="1", description=DESCRIPTION, lifespan=lifespan
    )
    app.state.services = services
    install_handlers(app)
    app.include_router(tiles_api.router)
    app.include_router(imagery_api.router)
    app.include_router(account_api.router)
    web.mount(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(services.settings.cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=[KEY_HEADER, "Content-Type", "If-None-Match"],
        expose_headers=["ETag", "Retry-After", "Cache-Control"],
        max_age=3600,
    )
    return app


def serving_app(services: ServeServices) -> ASGIApp:
    """The app as served: cached tiles are answered before FastAPI (see fastpath.py)."""
    return CachedTileFastPath(create_app(services), services)


def app_from_settings() -> ASGIApp:
    """The app configured from `ROADSWARM_*` settings (uvicorn's factory in each worker)."""
    return serving_app(services_from_settings())
