"""The map consumer API and web viewer: tiles, TileJSON, imagery queries, API keys and metering."""
