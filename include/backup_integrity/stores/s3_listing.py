"""The listing fast path: the objects of a ListObjectsV2 page read straight from its XML.

botocore parses each ``<Contents>`` element of a page through its model, member by
member: about a quarter of a chunk's CPU at 1,000 objects a page. When every object
of a page holds only the plain elements of :data:`OBJECT_TEXT` (and an owner), the
fast path reads them itself, takes them out of the body and hands them to botocore as
the response's ``Contents``; botocore parses the rest of the page as it always does.

botocore has no public way to choose its parser, so the fast path rides on its
``before-parse`` event through the public event system (``client.meta.events``). That
event's arguments are not documented: ``tests/integration/test_s3_store.py`` pins
them, and the fast path turns itself off, with a warning, and leaves every page to
botocore when

* the event does not pass what it expects, or
* the client's first listing page with objects, which botocore parses in full as any
  client does while the fast path reads the same bytes, is not read exactly as
  botocore read it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

BEFORE_PARSE = "before-parse.s3.ListObjectsV2"
AFTER_CALL = "after-call.s3.ListObjectsV2"

#: The elements of a listed object the fast path reads itself, as text.
OBJECT_TEXT = ("Key", "ETag", "StorageClass", "ChecksumType")
OWNER_TEXT = ("DisplayName", "ID")

#: A listed object's tags as they sit in the page (S3 escapes ``<`` in keys: never found inside one).
_OPEN, _CLOSE = b"<Contents>", b"</Contents>"

UNCHECKED, ON, OFF = "unchecked", "on", "off"


def fast_timestamp(text: str) -> datetime:
    """botocore's timestamp parsing, minus dateutil for ISO 8601 (a listing page has 1,000 of them).

    dateutil spends about 0.2 s of CPU on each 1,000-key page; ``fromisoformat``
    parses the same ``2026-12-01T00:49:00.000Z`` in a few microseconds. Anything
    else (RFC 822 headers, epochs) goes to botocore's own parser.
    """
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        from botocore.utils import parse_timestamp

        return parse_timestamp(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _local_name(element: Any) -> str:
    """An XML element's tag without its namespace (``{http://s3.amazonaws.com/…}Key`` → ``Key``)."""
    return element.tag.rpartition("}")[2]


def read_object(node: Any) -> dict[str, Any] | None:
    """One ``<Contents>`` element as botocore parses it, or None when it holds anything else."""
    parsed: dict[str, Any] = {}
    for child in node:
        tag = _local_name(child)
        text = child.text or ""
        if tag in OBJECT_TEXT:
            parsed[tag] = text
        elif tag == "Size":
            parsed[tag] = int(text)
        elif tag == "LastModified":
            parsed[tag] = fast_timestamp(text)
        elif tag == "ChecksumAlgorithm":
            parsed.setdefault(tag, []).append(text)
        elif tag == "Owner" and all(_local_name(o) in OWNER_TEXT for o in child):
            parsed[tag] = {_local_name(o): o.text or "" for o in child}
        else:
            return None
    return parsed


@dataclass(frozen=True)
class ListingPage:
    """A page's objects as the fast path read them, and the page without them (for botocore)."""

    objects: list[dict[str, Any]]
    remainder: bytes


def read_listing_page(body: bytes) -> ListingPage | None:
    """The page's objects and the rest of it, or None when the fast path should not read this page.

    The objects are cut out of the body as one slice, so they must stand side by side (as
    S3 writes them, before any ``CommonPrefixes``) and be the only ``<Contents>`` in it.
    """
    if b"<!" in body:  # a comment, CDATA or a DOCTYPE: not a page as S3 writes them
        return None
    elements = list(ElementTree.fromstring(body))
    positions = [i for i, element in enumerate(elements) if _local_name(element) == "Contents"]
    objects = []
    for position in positions:
        parsed = read_object(elements[position])
        if parsed is None:
            return None
        objects.append(parsed)
    if not objects:
        return ListingPage([], body)
    side_by_side = positions[-1] - positions[0] + 1 == len(positions)
    if not side_by_side or body.count(_OPEN) != len(objects) or body.count(_CLOSE) != len(objects):
        return None
    start, end = body.find(_OPEN), body.rfind(_CLOSE) + len(_CLOSE)
    return ListingPage(objects, body[:start] + body[end:])


def first_difference(ours: list[dict[str, Any]], botocore: list[dict[str, Any]]) -> str:
    """Where two readings of a page's objects first differ, for the warning."""
    if len(ours) != len(botocore):
        return f"{len(ours)} objects read, botocore read {len(botocore)}"
    for mine, theirs in zip(ours, botocore, strict=True):
        if mine != theirs:
            fields = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
            return f"object {theirs.get('Key', mine.get('Key'))!r}, field(s) {', '.join(fields)}"
    return "no difference"


class ListingFastPath:
    """One client's fast path: unchecked until its first page with objects, then on or off for good."""

    def __init__(self, read_page: Callable[[bytes], ListingPage | None] = read_listing_page) -> None:
        self.read_page = read_page
        self.state = UNCHECKED
        #: Pages whose objects the fast path handed to botocore (the check page is botocore's own).
        self.pages_read = 0
        self._lock = threading.Lock()
        self._pending = threading.local()

    def turn_off(self, why: str) -> None:
        with self._lock:
            if self.state == OFF:
                return
            self.state = OFF
        log.warning("listing fast path off: %s; botocore parses every listing page", why)

    def before_parse(self, **kwargs: Any) -> None:
        """botocore's ``before-parse`` handler: read the page; when on, take its objects out."""
        self._pending.objects = None
        if self.state == OFF:
            return
        response, customized = kwargs.get("response_dict"), kwargs.get("customized_response_dict")
        if not (
            isinstance(response, dict)
            and isinstance(customized, dict)
            and isinstance(response.get("body"), bytes)
        ):
            self.turn_off(
                "botocore's before-parse event no longer passes response_dict (with a body) "
                "and customized_response_dict"
            )
            return
        if response.get("status_code") != 200:
            return
        try:
            page = self.read_page(response["body"])
        except (ElementTree.ParseError, ValueError):
            return  # not a page (or a broken one): botocore parses it, and reports what is wrong
        except Exception as exc:  # a listing must never fail for the fast path's sake
            self.turn_off(f"it failed on a page ({type(exc).__name__}: {exc})")
            return
        if page is None:
            return
        if self.state == ON:
            response["body"] = page.remainder
            if page.objects:
                customized["Contents"] = page.objects
            with self._lock:
                self.pages_read += 1
        else:
            self._pending.objects = page.objects

    def after_call(self, parsed: Any = None, **_: Any) -> None:
        """botocore's ``after-call`` handler: on the first page read both ways, compare the two."""
        ours = getattr(self._pending, "objects", None)
        self._pending.objects = None
        if self.state != UNCHECKED or not ours or not isinstance(parsed, dict):
            return
        theirs = parsed.get("Contents", [])
        if ours == theirs:
            with self._lock:
                if self.state == UNCHECKED:
                    self.state = ON
            log.debug("listing fast path on: a page of %d objects read as botocore reads it", len(ours))
        else:
            self.turn_off(f"it read a page unlike botocore ({first_difference(ours, theirs)})")


def install_listing_fast_path(client: Any, fast_path: ListingFastPath | None = None) -> ListingFastPath:
    """Give an S3 client the fast path (it checks itself on the client's first listing page)."""
    fast_path = fast_path or ListingFastPath()
    client.meta.events.register(BEFORE_PARSE, fast_path.before_parse)
    # First, so that it sees botocore's parse before botocore's own handler URL-decodes the keys.
    client.meta.events.register_first(AFTER_CALL, fast_path.after_call)
    return fast_path
