"""shaec: a learned image codec (soft-to-hard quantized autoencoder) for the command line.

Importing the package is cheap: heavy modules (onnxruntime, torch) are imported only by the
submodules that need them, so that ``shaec --help`` stays fast.

The version's minor number is the default model's generation (0.9.x ships shae-v9): it changes
whenever the shipped models change (CHANGELOG.md).
"""

__version__ = "0.11.3"
