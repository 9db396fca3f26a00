"""Compression of neural-network weights into .shaw files (`shaec weights`).

The second half of Agustsson et al. (NIPS 2017): weights quantized to centers and entropy-coded.
``codec`` quantizes and codes numpy arrays (``symbols``: the context-coded symbol streams),
``container`` is the .shaw file (docs/weights.md), ``sensitivity`` calibrates the bit allocation
on sample inputs, ``tensors`` reads and writes PyTorch and ONNX files, ``training`` and
``bayesian`` are the training modes (these three need torch; reading ONNX files and
``onnx_weights``' split and join need onnx), ``onnx_weights`` runs ONNX graphs from .shaw weights,
and ``model_files`` turns whole model files into .shaw bytes and back (what the CLI calls).
"""
