"""A dataset-level JSON file merged three ways, so that neither a person's edit nor new data is lost.

``participants.json``, ``scans.json``, ``sessions.json`` and ``phenotype/<table>.json`` are written by
bids-factory from what it knows (column descriptions, EHR levels...), and a curator may reword a
description, add a column's entry or delete one. Each run merges, key by key (objects recursively):

- ``base``: what bids-factory wrote last time (kept in ``code/bids-factory/written/``);
- ``current``: the file as it is now (a person may have edited it);
- ``new``: what bids-factory would write now.

A key a person changed (``current`` differs from ``base``) keeps the person's value; a key nobody
touched takes the new value (a new EHR level, a better description); a key a person deleted stays
deleted unless bids-factory now has something new to say there; a key bids-factory no longer writes is
dropped unless a person changed it. Without a ``base`` (a dataset from before this was kept), every key
already in the file counts as a person's: nothing is overwritten, new keys are added.
"""

from __future__ import annotations

_MISSING = object()


def merge_json(current: dict | None, base: dict | None, new: dict) -> dict:
    """The merged object (see the module's rules). ``current`` None: no file yet; ``base`` None: what
    bids-factory wrote last is unknown (every value in ``current`` is then taken as a person's)."""
    return new if current is None else _merge(current, base, new)


def _merge(current: dict, base: dict | None, new: dict) -> dict:
    merged = {}
    for key in [*new, *(k for k in current if k not in new)]:
        mine, now = current.get(key, _MISSING), new.get(key, _MISSING)
        was = _MISSING if base is None else base.get(key, _MISSING)
        persons = base is None or mine != was  # a person wrote or changed it (or nobody knows)
        if mine is _MISSING:  # not there now: new, or deleted by a person
            if now is not _MISSING and (base is None or was is _MISSING or now != was):
                merged[key] = now
        elif now is _MISSING:  # bids-factory no longer writes it: kept only if it is a person's
            if persons:
                merged[key] = mine
        elif isinstance(mine, dict) and isinstance(now, dict):
            merged[key] = _merge(mine, was if isinstance(was, dict) else None, now)
        else:
            merged[key] = mine if persons else now
    return merged
