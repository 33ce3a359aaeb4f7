"""Web Mercator tiles: the pixel grid, and imagery stitched into it from dashcam frames."""
