"""cam_tutorial: the tested helper package behind the cam-tutorial book."""

__version__ = "0.1.0"
