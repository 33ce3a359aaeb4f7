"""What the tile pipeline works with: the catalog, the object store and the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.db import Catalog
from ingest.storage import ObjectStore
from mapbuilder.errors import MapError
from mapbuilder.settings import TileSettings
from mapbuilder.tiles.bev import BevSettings
from mapbuilder.tiles.constraints import RegistrationMemo
from mapbuilder.tiles.frames import DecodedFrames
from mapbuilder.tiles.layers import layer
from mapbuilder.tiles.shared_frames import SharedFrames
from mapbuilder.tiles.store import TileStore

IMAGERY = "imagery"
"""The layer built from frames."""


@dataclass(frozen=True)
class TileContext:
    """What building tiles needs: the catalog, the object store, the settings, and the frames
    decoded so far."""

    catalog: Catalog
    store: ObjectStore
    settings: TileSettings = field(default_factory=TileSettings)
    bev: BevSettings = field(default_factory=BevSettings)
    # Kept across the blocks this context builds: a frame near a block's edge is decoded once.
    decoded: DecodedFrames = field(default_factory=DecodedFrames, compare=False, repr=False)
    # Kept across the pose tasks this context runs: a sequence's next batch registers only
    # the pairs it adds.
    registrations: RegistrationMemo = field(
        default_factory=RegistrationMemo, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        """Frames are projected at the zoom the imagery layer is built at, and no other; decoded
        frames are shared with the worker's other processes when the settings name a folder."""
        top = layer(IMAGERY).max_zoom
        if self.bev.zoom != top:
            msg = f"imagery is stitched at zoom {top}, not {self.bev.zoom}: leave BevSettings.zoom"
            raise MapError(msg)
        folder, megabytes = self.settings.shared_frames_dir, self.settings.shared_frames_mb
        if self.decoded.shared is None and folder is not None and megabytes > 0:
            self.decoded.shared = SharedFrames(folder, megabytes * 1024 * 1024)

    @property
    def tiles(self) -> TileStore:
        """The tile store over the object store."""
        return TileStore(self.store)
