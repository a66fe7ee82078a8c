"""Procedural noise of the synthetic world, anchored to surfaces (hash, blocky value noise, smooth
bilinear value noise), and the corners of a box: shared by the classic and the styled shading."""
from __future__ import annotations

import numpy as np


def hash_noise(ix, iz, salt):
    """A pseudo-random value in [0, 1) per lattice point (ix, iz) and salt."""
    return np.modf(np.sin(ix * 12.9898 + iz * 78.233 + salt * 37.719) * 43758.5453)[0] % 1.0


def value_noise(a, b, cell, salt):
    """Blocky value noise in [0, 1): one value per `cell`-metre square."""
    ia, ib = np.floor(a / cell), np.floor(b / cell)
    return hash_noise(ia, ib, salt)


def box_corners(lo, hi) -> np.ndarray:
    """The 8 corners [8, 3] of an axis-aligned box."""
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def smooth_noise(a, b, cell, salt):
    """Bilinear value noise in [0, 1] on a lattice of `cell` metres (anchored to the surface)."""
    fa, fb = a / cell, b / cell
    ia, ib = np.floor(fa), np.floor(fb)
    ta, tb = fa - ia, fb - ib
    ta, tb = ta * ta * (3 - 2 * ta), tb * tb * (3 - 2 * tb)
    v00, v10 = hash_noise(ia, ib, salt), hash_noise(ia + 1, ib, salt)
    v01, v11 = hash_noise(ia, ib + 1, salt), hash_noise(ia + 1, ib + 1, salt)
    return (v00 * (1 - ta) + v10 * ta) * (1 - tb) + (v01 * (1 - ta) + v11 * ta) * tb
