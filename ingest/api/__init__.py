"""The ingest HTTP API (FastAPI): device registration, upload tickets, batch commits, operations."""
