"""Test suites of roadswarm: unit, integration (real services) and reliability."""
