"""File formats: Pulseq import, phantom files (``.npz``, NIfTI), images (NIfTI, PNG) and ISMRMRD raw data."""

from .brainweb import (
    BrainWebUnavailableError,
    brain2d_fractions,
    brainmodel_fractions,
    fetch_brainweb,
    load_brainweb,
    load_brainweb_fuzzy,
)
from .images import save_nifti, save_png
from .mrd import infer_line_lengths, write_ismrmrd
from .phantom_files import (
    NPZ_KEYS,
    REQUIRED_MAPS,
    load_fractions_nifti,
    load_fractions_npz,
    load_phantom_nifti,
    load_phantom_npz,
    save_fractions_nifti,
    save_fractions_npz,
    save_phantom_nifti,
    save_phantom_npz,
)
from .pulseq import TIME_TOLERANCE, PulseqImportError, load_pulseq, read_definitions
from .pulseq_export import to_pulseq, write_pulseq

__all__ = [
    "BrainWebUnavailableError",
    "brain2d_fractions",
    "brainmodel_fractions",
    "fetch_brainweb",
    "load_brainweb",
    "load_brainweb_fuzzy",
    "NPZ_KEYS",
    "REQUIRED_MAPS",
    "TIME_TOLERANCE",
    "PulseqImportError",
    "infer_line_lengths",
    "load_fractions_nifti",
    "load_fractions_npz",
    "load_phantom_nifti",
    "load_phantom_npz",
    "load_pulseq",
    "read_definitions",
    "save_fractions_nifti",
    "save_fractions_npz",
    "save_nifti",
    "save_phantom_nifti",
    "save_phantom_npz",
    "to_pulseq",
    "save_png",
    "write_ismrmrd",
    "write_pulseq",
]
