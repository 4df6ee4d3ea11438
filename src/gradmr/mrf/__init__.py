"""MR fingerprinting: trains, dictionaries, learned encoders and BlochNet (a physics decoder through the EPG)."""

from .fingerprints import add_noise, normalise, simulate_fingerprints
from .trains import TRAINS, mrf_train

__all__ = ["TRAINS", "add_noise", "mrf_train", "normalise", "simulate_fingerprints"]
