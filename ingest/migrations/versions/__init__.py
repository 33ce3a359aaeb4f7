"""Catalog revisions, oldest first."""
