"""Checkpoints: file formats, the one table of external names, and name resolution."""

from minibert.checkpoints.hf import *  # noqa: F401,F403  (the public loading API)
