"""Integration tests: real services and real worker processes."""
