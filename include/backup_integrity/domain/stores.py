"""The named stores a run verifies: what each one is, where it keeps copies, where the catalog says so.

A store is named by the operator (``local``, ``r2``, ``wasabi``, …) and described by a
:class:`StoreSpec`; their order is the operator's preference of sources (repair, restore
drills). Pure values: the Variable's ``stores`` key is validated into them by
:mod:`include.backup_integrity.config.settings`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

LOCAL = "local"
S3 = "s3"
STORE_TYPES = (LOCAL, S3)

#: A store's name: it becomes ``details.backend``, a statistics key and a dashboard column.
STORE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
#: Names a store may not take (``total`` is the statistics' and the dashboard's sum).
RESERVED_STORE_NAMES = frozenset({"total"})


@dataclass(frozen=True)
class StoreSpec:
    """One configured store: a folder (``local``) or an S3-compatible bucket (``s3``)."""

    name: str
    type: str
    path_column: str
    root: str | None = None
    conn_id: str | None = None
    bucket: str | None = None

    @property
    def is_local(self) -> bool:
        return self.type == LOCAL


def store_order(stores: Iterable[StoreSpec]) -> tuple[str, ...]:
    """The stores' names in the operator's order of preference."""
    return tuple(store.name for store in stores)


def rank_of(order: Sequence[str]) -> dict[str, int]:
    """Store name -> its position in ``order`` (the preferred source first)."""
    return {name: index for index, name in enumerate(order)}
