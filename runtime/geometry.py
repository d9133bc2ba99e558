"""Pixel windows around boxes (validated and clipped by ``prompts.check_box``).

Boxes are float ``(x1, y1, x2, y2)`` in original-image pixels with exclusive
right/bottom edges: pixel column ``c`` spans ``[c, c + 1)``, so a box covers
the columns ``floor(x1) .. ceil(x2) - 1``.
"""
import math


def pixel_window(box, width, height, margin_x=0.0, margin_y=0.0):
    """Integer window ``(x0, y0, x1, y1)`` (exclusive end) covering ``box`` plus margins, inside the image."""
    x1, y1, x2, y2 = box
    return (max(0, math.floor(x1 - margin_x)), max(0, math.floor(y1 - margin_y)),
            min(width, math.ceil(x2 + margin_x)), min(height, math.ceil(y2 + margin_y)))


def fit_scale(height, width, max_pixels):
    """Scale (<= 1) that brings a height x width area down to at most ``max_pixels``."""
    area = height * width
    return 1.0 if area <= max_pixels else math.sqrt(max_pixels / area)
