"""The one seed policy: every random stream of a job is derived from the base seed and the job's keys.

``derived_seed(base, *keys)`` hashes its arguments, so a stream depends only on *what* it is for (dataset,
n, model, chunk index, ...), never on the order in which jobs run or on how work is split into batches.
"""

from __future__ import annotations

import hashlib


def derived_seed(base: int, *keys: object) -> int:
    """A stable 56-bit seed for the stream named by ``keys`` under the base seed ``base``."""
    text = ":".join(str(k) for k in (base, *keys))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:7], "little")
