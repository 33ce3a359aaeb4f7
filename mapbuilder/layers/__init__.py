"""The coverage and freshness layers: per-segment capture statistics drawn as vector and raster tiles."""
