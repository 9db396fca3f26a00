"""shaec: a learned image codec (soft-to-hard quantized autoencoder) for the command line.

Importing the package is cheap: heavy modules (torch, onnxruntime) are imported only by the
submodules that need them, so that ``shaec --help`` stays fast.
"""

__version__ = "0.1.0"
