"""One small hierarchy for every error minibert raises on purpose.

Each class also derives from the built-in exception a caller would expect (``ValueError``,
``TypeError``, ``FileNotFoundError``), so ``except ValueError`` keeps working, while
``except minibert.errors.MinibertError`` catches everything that is ours.
"""

from __future__ import annotations


class MinibertError(Exception):
    """Base class of all errors minibert raises deliberately."""


class ConfigError(MinibertError, ValueError):
    """A configuration value is impossible or unsupported (names the field and the value)."""


class InputError(MinibertError, ValueError):
    """A tensor or text passed to a model or tokenizer is invalid (names the argument and the value)."""


class InputTypeError(MinibertError, TypeError):
    """An argument has the wrong type (names the argument, what was expected and what came)."""


class CheckpointError(MinibertError, ValueError):
    """A checkpoint file is missing, unreadable, corrupted or does not fit the model."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A name or path did not resolve to a local checkpoint (minibert never downloads)."""


class TrainingError(MinibertError, RuntimeError):
    """Training cannot start or cannot go on (unwritable output, NaN loss, ...)."""
