"""A local metric frame: WGS84 lon/lat to metres east/north of a centre point and back."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray
from pyproj import CRS, Transformer

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class LocalFrame:
    """Transverse Mercator centred on the world, so scale error stays far below 1 ppm over a city."""

    lon0: float
    lat0: float

    @property
    def proj4(self) -> str:
        return (
            f"+proj=tmerc +lat_0={self.lat0:.9f} +lon_0={self.lon0:.9f} +k=1 "
            "+x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
        )

    @cached_property
    def _to_local(self) -> Transformer:
        return Transformer.from_crs(CRS.from_epsg(4326), CRS.from_proj4(self.proj4), always_xy=True)

    @cached_property
    def _to_wgs84(self) -> Transformer:
        return Transformer.from_crs(CRS.from_proj4(self.proj4), CRS.from_epsg(4326), always_xy=True)

    def to_local(self, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Metres east and north of the centre for arrays of lon/lat degrees."""
        x, y = self._to_local.transform(np.asarray(lon, float), np.asarray(lat, float))
        return np.asarray(x, float), np.asarray(y, float)

    def to_wgs84(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Lon/lat degrees for arrays of local metres."""
        lon, lat = self._to_wgs84.transform(np.asarray(x, float), np.asarray(y, float))
        return np.asarray(lon, float), np.asarray(lat, float)

    def grid_convergence_deg(self, x: float, y: float) -> float:
        """Angle from local grid north to true north at a point, to turn grid headings into true ones."""
        lon, lat = self.to_wgs84(np.array([x, x]), np.array([y, y + 1.0]))
        d_east = (lon[1] - lon[0]) * np.cos(np.radians(lat[0]))
        d_north = lat[1] - lat[0]
        return float(np.degrees(np.arctan2(d_east, d_north)))
