"""Classroom engagement analytics: on-device attention signals from video, with privacy by design."""

__version__ = "0.1.0"
