"""Work computed ahead in a helper process, for a command that has a second core to spare.

An import seals its customers' fields (data keys, AES-GCM, blind indexes) in a helper process
while the command writes the previous batch: ``map_ahead(seal, batches, helper=True)``. Only
pure work goes there: the helper never touches the database (it inherits the command's
connections and must leave them alone), and its results come back in order.
"""
from __future__ import annotations

import gc
import multiprocessing

from flask import has_request_context

MIN_ITEMS = 2  # a helper for one item would only add the fork


def _freeze():
    # The helper is a fork of the command: its copies of the database connections must never be
    # closed or finalised there (closing a SQLite connection in a child can disturb the parent's
    # locks; a PostgreSQL one would end the parent's session). Frozen objects are never collected,
    # and the helper leaves through os._exit, which runs no finalisers either.
    gc.freeze()


def map_ahead(fn, items, *, helper=False, share=False):
    """``map(fn, items)``, lazily and in order. With ``helper`` (and at least two items) one forked
    process computes the items ahead of the caller, which meanwhile goes on with the results it
    has; with ``share`` as well, the caller computes every other item itself (when it has nothing
    else to do but wait for them). An exception in ``fn`` is raised in the caller when it reaches
    that item. ``fn`` must be a module-level function and its arguments and results picklable.
    Commands only: in a web request everything runs in the request (a server's worker must not
    fork), and so it does in a helper itself."""
    items = list(items)
    if (not helper or len(items) < MIN_ITEMS or has_request_context()
            or multiprocessing.parent_process() is not None):
        yield from map(fn, items)
        return
    with multiprocessing.get_context("fork").Pool(1, initializer=_freeze) as pool:
        if not share:
            yield from pool.imap(fn, items)
            return
        theirs = pool.imap(fn, items[1::2])
        for index, item in enumerate(items):
            yield fn(item) if index % 2 == 0 else next(theirs)
