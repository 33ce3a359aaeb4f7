"""The device app: capture, GNSS, keyframe selection, blurring, packaging, spool, upload and device identity.

May import `ingest.protocol` and `models`; must run on a Raspberry Pi without server libraries.
"""
