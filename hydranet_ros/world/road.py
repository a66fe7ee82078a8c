"""The road of a styled world: its centre line (curves) and ground height (hills) along z."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Road:
    """The road's centre line x_c(z) (a sine curve) and the ground height y = g(z) (hills)."""
    curve_amplitude: float = 0.0
    curve_wavelength: float = 1.0
    curve_phase: float = 0.0
    hill_amplitude: float = 0.0
    hill_wavelength: float = 1.0
    hill_phase: float = 0.0

    @property
    def flat(self) -> bool:
        """True when the ground is the plane y = 0."""
        return self.hill_amplitude == 0.0

    def centre_x(self, z):
        """x of the road's centre line at z (0 at z = 0)."""
        k = 2 * np.pi / self.curve_wavelength
        return self.curve_amplitude * (np.sin(k * np.asarray(z, float) + self.curve_phase) - np.sin(self.curve_phase))

    def heading(self, z):
        """dx_c/dz: the road's direction at z."""
        k = 2 * np.pi / self.curve_wavelength
        return self.curve_amplitude * k * np.cos(k * np.asarray(z, float) + self.curve_phase)

    def height(self, z):
        """Ground height at z (0 at z = 0)."""
        k = 2 * np.pi / self.hill_wavelength
        return self.hill_amplitude * (np.cos(self.hill_phase) - np.cos(k * np.asarray(z, float) + self.hill_phase))

    def grade(self, z):
        """dg/dz: the road's slope at z."""
        k = 2 * np.pi / self.hill_wavelength
        return self.hill_amplitude * k * np.sin(k * np.asarray(z, float) + self.hill_phase)
