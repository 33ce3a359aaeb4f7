"""The virtual world and the virtual dashcam.

`world` builds a road network and a ground-truth orthophoto from a real OSM extract; `drive` renders a
dashcam video, GNSS logs and a truth file from a route through that world. Everything is deterministic
for a given seed, so every later pipeline stage can be measured against the truth.
"""
