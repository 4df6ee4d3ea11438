"""MR fingerprinting: trains, dictionaries, learned encoders and BlochNet (a physics decoder through the EPG)."""

from .dictionary import (
    Dictionary,
    MatchResult,
    build_dictionary,
    compress,
    load_dictionary,
    log_mse,
    match,
    save_dictionary,
    save_maps_nifti,
    t1_t2_grid,
)
from .fingerprints import add_noise, normalise, simulate_fingerprints
from .models import MODELS, BlochNet, MRFModel, build_model, fit_length
from .phantoms import TestMaps, mrf_test_maps
from .training import (
    TRAINING_DEFAULTS,
    MRFData,
    evaluate,
    load_checkpoint,
    predict,
    synthetic_training_set,
    train_model,
)
from .trains import TRAINS, mrf_train

__all__ = [
    "MODELS",
    "TRAINING_DEFAULTS",
    "BlochNet",
    "MRFData",
    "MRFModel",
    "build_model",
    "evaluate",
    "fit_length",
    "load_checkpoint",
    "predict",
    "synthetic_training_set",
    "train_model",
    "TRAINS",
    "Dictionary",
    "MatchResult",
    "TestMaps",
    "add_noise",
    "build_dictionary",
    "compress",
    "load_dictionary",
    "log_mse",
    "match",
    "mrf_test_maps",
    "mrf_train",
    "normalise",
    "save_dictionary",
    "save_maps_nifti",
    "simulate_fingerprints",
    "t1_t2_grid",
]
