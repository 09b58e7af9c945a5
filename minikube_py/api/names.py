"""Names Kubernetes generates: the alphabet of its random and hash suffixes (no vowels,
and no digits that read as letters, so that no word is spelt by accident)."""

from __future__ import annotations

import random

SAFE_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def random_suffix(length: int = 5) -> str:
    """What `metadata.generateName` gets appended, as kube-apiserver's 5 characters."""
    return "".join(random.choices(SAFE_CHARS, k=length))
