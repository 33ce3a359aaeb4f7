"""Road network, sequence stitching, map matching, bird's-eye-view stitching, tiles and the consumer API."""
