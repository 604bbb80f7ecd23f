"""Cell determinants, written out.

``np.linalg.det`` costs ~30 µs a call; these are a few µs, and the batch version uses the same
operation order as the single one, so a volume is the same bits whichever computed it.
"""

from __future__ import annotations

import numpy as np


def det3(c: np.ndarray) -> float:
    """Determinant of a 3x3 matrix."""
    (a, b, d), (e, f, g), (h, i, j) = c.tolist()
    return a * (f * j - g * i) - b * (e * j - g * h) + d * (e * i - f * h)


def det3_batch(c: np.ndarray) -> np.ndarray:
    """:func:`det3` of stacked (F, 3, 3) matrices, in the same operation order (same rounding)."""
    a, b, d = c[:, 0, 0], c[:, 0, 1], c[:, 0, 2]
    e, f, g = c[:, 1, 0], c[:, 1, 1], c[:, 1, 2]
    h, i, j = c[:, 2, 0], c[:, 2, 1], c[:, 2, 2]
    return a * (f * j - g * i) - b * (e * j - g * h) + d * (e * i - f * h)
