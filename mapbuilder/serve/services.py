"""What the consumer API runs on: the catalog, the tile and object stores, the URL signer."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from ingest.db import Catalog
from ingest.services import open_catalog, open_store
from ingest.settings import IngestSettings
from ingest.storage import ObjectStore
from mapbuilder.serve.key_cache import KeyCache
from mapbuilder.serve.leases import TokenLeases
from mapbuilder.serve.metering import UsageMeter
from mapbuilder.serve.presign import ImagePresigner, open_presigner
from mapbuilder.serve.settings import ServeSettings
from mapbuilder.serve.signing import UrlSigner
from mapbuilder.serve.tile_cache import TileCache
from mapbuilder.tiles.store import TileStore


@dataclass(frozen=True)
class ServeServices:
    """The handles every route takes from `app.state.services`.

    `keys`, `leases` and `meter` hold this process's cached keys, rate-limit tokens and usage
    counts; they are made from the catalog and the settings, never passed in.
    """

    catalog: Catalog
    store: ObjectStore
    settings: ServeSettings
    signer: UrlSigner
    cache: TileCache = field(default_factory=lambda: TileCache(ttl_s=0, max_bytes=1))
    # Presigned S3 GETs for frame images when the store is S3/MinIO; None: this API's own URLs.
    presigner: ImagePresigner | None = None
    keys: KeyCache = field(init=False)
    leases: TokenLeases = field(init=False)
    meter: UsageMeter = field(init=False)

    def __post_init__(self) -> None:
        # A frozen dataclass sets its derived fields through object.__setattr__.
        object.__setattr__(self, "keys", KeyCache(self.catalog, ttl_s=self.settings.key_cache_s))
        object.__setattr__(self, "leases", TokenLeases(self.catalog))
        object.__setattr__(self, "meter", UsageMeter(self.catalog))

    @property
    def tiles(self) -> TileStore:
        """The tiles in the object store."""
        return TileStore(self.store)


def services_from_settings() -> ServeServices:
    """Services configured from `ROADSWARM_*` settings (a random URL secret when none is set)."""
    ingest = IngestSettings()
    settings = ServeSettings()
    secret = settings.url_secret or secrets.token_urlsafe(32)
    return ServeServices(
        catalog=open_catalog(ingest),
        store=open_store(ingest),
        settings=settings,
        signer=UrlSigner(secret, settings.image_url_ttl_s),
        cache=tile_cache(settings),
        presigner=open_presigner(ingest, settings),
    )


def tile_cache(settings: ServeSettings) -> TileCache:
    """The in-process tile cache these settings ask for."""
    return TileCache(ttl_s=settings.tile_cache_s, max_bytes=settings.tile_cache_mib * 1024 * 1024)
