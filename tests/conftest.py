"""Shared helpers for the tests. transformers is imported here only as the reference oracle."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

# One profile for CI: examples are small models, so a deadline only adds noise on a shared 2-core host.
settings.register_profile("minibert", deadline=None, print_blob=True)
settings.load_profile("minibert")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def minilm_dir():
    import minibert

    return minibert.resolve(minibert.DEFAULT_CHECKPOINT)
