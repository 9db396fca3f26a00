"""Training, export and research tools (PyTorch; ``pip install 'shaec[train]'``).

The runtime (imgcodec.codec, the CLI's encode/decode) never imports this package.
"""
