"""Keeping CPython's cyclic garbage collector off the event loop's critical path.

Our processes are long-lived servers whose heap, once started, is mostly permanent
(modules, schema tables, informer caches). The collector's full passes walk every
tracked object, so they stall the loop for longer the bigger that heap (measured in the
apiserver at 1,000 pods: 180-1,000 ms per pass, one every 2-4 s). `settle_heap` is
called once a process has built its permanent state.
"""

from __future__ import annotations

import gc

# CPython's default is 700. Replaying an informer's churn (1,000 cached pods, each
# event decoding a new version) over a frozen heap, 2,000 kept the longest pause at the
# default's (~9 ms) in a third as many collections; 10,000 made each young pass ~30 ms.
YOUNG_COLLECTION_THRESHOLD = 2_000


def settle_heap() -> None:
    """Collect once, freeze the survivors out of the collector's sight (`gc.freeze`:
    they are still freed by reference counting, only cycles among them no longer are),
    and make young collections rarer, so that objects living for one watch event or
    one request die before a collection promotes them towards the full passes. What an
    earlier call froze is thawed first, so the cycles of a previous term as leader
    (its stopped informers and their tasks) are collected, not kept for good."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _, mid, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, mid, old)
