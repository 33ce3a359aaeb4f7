"""The ingest API as deployed: ingest's own routes plus the routes other packages add for devices
(`rewards.api`: earnings), which `ingest` may not import itself."""

from __future__ import annotations

from fastapi import FastAPI

from ingest.api.app import app_from_settings, create_app
from ingest.api.services import ApiServices
from rewards.api import router as rewards_router


def with_device_extras(app: FastAPI) -> FastAPI:
    """`app` with the rewards routes mounted."""
    app.include_router(rewards_router)
    return app


def full_app(services: ApiServices) -> FastAPI:
    """The whole device API over the given services (tests, the demo)."""
    return with_device_extras(create_app(services))


def full_app_from_settings(api_url: str) -> FastAPI:
    """The whole device API configured from `ROADSWARM_*` settings (`roadswarm ingest serve`)."""
    return with_device_extras(app_from_settings(api_url))
