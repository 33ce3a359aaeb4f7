"""The upload protocol (shared with the edge), ingest API, validation, catalog, the Celery app and its queues.

`ingest/__init__.py` and `ingest.protocol` must stay importable on a device without server dependencies.
"""
