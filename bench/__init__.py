"""Benchmarks that measure roadswarm against its anchors, side by side, in one run."""
