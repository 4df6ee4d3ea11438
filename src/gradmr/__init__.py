"""gradmr: a differentiable MRI physics toolkit in PyTorch."""

__version__ = "0.1.0"
