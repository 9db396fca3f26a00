"""Compression of neural-network weights into .shaw files (`shaec weights`).

The second half of Agustsson et al. (NIPS 2017): weights quantized to centers and entropy-coded.
``codec`` quantizes and codes numpy arrays, ``container`` is the .shaw file (docs/weights.md),
``tensors`` reads and writes PyTorch and ONNX files (the only part that needs torch or onnx).
"""
