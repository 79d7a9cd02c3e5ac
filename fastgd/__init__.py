"""fastgd: gradient-descent optimizers compiled with Numba."""

__version__ = "0.1.0"
