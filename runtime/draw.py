"""Overlays a person can look at: mask tint and outline, box, point, phrase."""
import cv2
import numpy as np

MASK_RGB = (30, 144, 255)
BOX_RGB = (255, 215, 0)
POINT_RGB = (255, 40, 40)


def overlay(image, mask=None, box=None, point=None, text=None, title=None):
    """A copy of the RGB image with what is given drawn on it."""
    canvas = image.copy()
    thick = max(1, round(max(image.shape[:2]) / 500))
    if mask is not None and mask.any():
        m = mask.astype(bool)
        canvas[m] = (0.55 * canvas[m] + 0.45 * np.array(MASK_RGB)).astype(np.uint8)
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, MASK_RGB, thick, cv2.LINE_AA)
    if box is not None:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2 - 1, y2 - 1), BOX_RGB, thick, cv2.LINE_AA)
    if point is not None:
        cv2.circle(canvas, (int(round(point[0])), int(round(point[1]))), 3 * thick + 2, POINT_RGB, -1, cv2.LINE_AA)
        cv2.circle(canvas, (int(round(point[0])), int(round(point[1]))), 3 * thick + 2, (255, 255, 255), 1, cv2.LINE_AA)
    for i, line in enumerate(t for t in (title, text) if t):
        _label(canvas, line, (4, 4 + i * (18 * thick + 8)), thick)
    return canvas


def _label(canvas, text, origin, thick):
    scale = 0.5 * thick
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, y = origin
    cv2.rectangle(canvas, (x, y), (x + w + 8, y + h + base + 8), (0, 0, 0), -1)
    cv2.putText(canvas, text, (x + 4, y + h + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def side_by_side(*images):
    """Images of equal height placed left to right with a thin gap."""
    gap = np.full((images[0].shape[0], 8, 3), 255, np.uint8)
    parts = []
    for im in images:
        parts += [im, gap]
    return np.concatenate(parts[:-1], axis=1)
