"""GNSS sources, one module per source, all producing `Fix` records on the GNSS UTC clock."""
