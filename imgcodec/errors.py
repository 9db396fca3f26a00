"""Exceptions a user can cause. The CLI turns each into one line on stderr and a non-zero exit."""


class ShaecError(Exception):
    """Base class of every error caused by input, files or the environment, not by a bug."""


class FormatError(ShaecError):
    """A .shae file is truncated, corrupted, or not a .shae file at all."""


class ImageInputError(ShaecError):
    """An input image cannot be read, or is outside the supported sizes."""


class ModelNotFoundError(ShaecError):
    """The weights a file was made with (or a requested level) are not installed."""


class OutputExistsError(ShaecError):
    """An output file exists already and overwriting was not asked for."""
