"""A local metric frame: WGS84 lon/lat to metres east/north of a centre point and back.

The frame lives in `mapbuilder.geo` (the road network and the matcher work in it too); the simulator
uses the same one, so its worlds and the map builder agree to the millimetre.
"""

from __future__ import annotations

from mapbuilder.geo import FloatArray, LocalFrame

__all__ = ["FloatArray", "LocalFrame"]
