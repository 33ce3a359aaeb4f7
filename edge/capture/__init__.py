"""Frame sources: a V4L2/CSI camera, a video file or a folder of images, each giving frames
stamped with their capture time on the GNSS clock."""
