"""BMapEst: tissue probability maps (CSF, GM, WM) estimated from weighted images through the simulator.

After Gupta, Nikolakakis, Zaiss, Marinescu, "BMapEst: Estimation of Brain Tissue Probability Maps using a
Differentiable MRI Simulator" (ICML 2024 workshop). :mod:`~gradmr.bmapest.protocol` builds the paper's six
sequence families; :mod:`~gradmr.bmapest.forward` the forward models (multi-compartment by k-space kernels, and the
paper's linear mixing); :mod:`~gradmr.bmapest.estimate` the estimator; :mod:`~gradmr.bmapest.metrics` Dice, PSNR and
SSIM as the paper; :mod:`~gradmr.bmapest.noise` noisy observations; :mod:`~gradmr.bmapest.baselines` fuzzy C-means
and the supervised U-Net.
"""

from .estimate import EstimateResult, estimate_maps
from .forward import TISSUES, Acquisition, images_mixed, images_multi, simulate_images, tissue_kernels
from .metrics import evaluate, table_markdown
from .noise import add_noise
from .protocol import FAMILIES, Contrast, paper_protocol, parse_families

__all__ = [
    "FAMILIES",
    "TISSUES",
    "Acquisition",
    "Contrast",
    "EstimateResult",
    "add_noise",
    "estimate_maps",
    "evaluate",
    "images_mixed",
    "images_multi",
    "paper_protocol",
    "parse_families",
    "simulate_images",
    "table_markdown",
    "tissue_kernels",
]
