"""List-then-watch caches of one collection (a namespace's jobs or pods), by label selector.

Each :class:`Informer` thread lists the collection, then follows it with the Kubernetes watch
API (``kubernetes.watch.Watch``) from the list's resourceVersion, keeping every object in a
dict by name and calling ``notify(obj)`` for each change. It

* re-lists at once on **410 Gone** (the resourceVersion was compacted away, or fell out of the
  API server's watch cache),
* re-lists every ``resync_s`` anyway (a missed event cannot leave the cache wrong for longer),
* reconnects with exponential backoff (``backoff_s`` doubling to 30 s) after a connection
  error, a 5xx or a 429, and after a 401/403 (an RBAC change may fix it; the watcher's
  sweep reads jobs directly meanwhile).

A restarted dispatcher needs no saved state: the first list finds every job by label.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)
Obj = dict[str, Any]
ListCall = Callable[..., Any]
MAX_BACKOFF_S = 30.0


class Informer(threading.Thread):
    """A live cache of one collection. ``list_call(**kwargs)`` is a typed client list method
    for the collection (namespace and the like bound in), called with ``label_selector``,
    ``_preload_content=False`` and, for watches, ``watch=True`` and a resourceVersion."""

    def __init__(
        self,
        what: str,
        list_call: ListCall,
        *,
        selector: str,
        notify: Callable[[Obj], None],
        resync_s: float = 300.0,
        backoff_s: float = 0.5,
        resume_from: str | None = None,
        index: Callable[[Obj], str | None] | None = None,
    ) -> None:
        super().__init__(name=f"informer {what}", daemon=True)
        self.what = what
        self._list_call = list_call
        self._selector = selector
        self._notify = notify
        self._resync_s = resync_s
        self._backoff_s = backoff_s
        self._version = resume_from
        self._objects: dict[str, Obj] = {}
        # Optional secondary index (e.g. pods by their job's name): key -> object names.
        self._index_of = index
        self._index: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watch: watch.Watch | None = None
        self.synced = threading.Event()
        self.lists = 0  # full lists done (first, 410, resync, after an error)
        self.watches = 0  # watch requests made (each list is followed by one; a watch the
        # server or the network ended is resumed from the last resourceVersion)
        self.gone = 0  # 410s seen
        self.errors = 0  # failed lists/watches, retried after a backoff

    # -- reading the cache -----------------------------------------------------------------

    def get(self, name: str) -> Obj | None:
        with self._lock:
            return self._objects.get(name)

    def items(self) -> list[Obj]:
        with self._lock:
            return list(self._objects.values())

    def indexed(self, key: str) -> list[Obj]:
        """The objects whose ``index`` value is ``key`` (O(1), not a scan)."""
        with self._lock:
            return [self._objects[name] for name in self._index.get(key, ())]

    def _put(self, name: str, obj: Obj | None) -> None:
        """Set or (obj None) drop one object, keeping the index (lock held)."""
        old = self._objects.pop(name, None)
        if self._index_of is not None and old is not None:
            key = self._index_of(old)
            if key is not None:
                self._index.get(key, set()).discard(name)
        if obj is None:
            return
        self._objects[name] = obj
        if self._index_of is not None:
            key = self._index_of(obj)
            if key is not None:
                self._index.setdefault(key, set()).add(name)

    # -- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        current = self._watch
        if current is not None:
            current.stop()  # type: ignore[no-untyped-call]  # shuts the socket down, which unblocks the read at once
        self.join(10)

    def run(self) -> None:
        failures = 0
        listed_at = time.monotonic()  # (a resumed watch counts from now)
        while not self._stopping.is_set():
            try:
                if self._version is None or time.monotonic() - listed_at >= self._resync_s:
                    self._version = self._relist()
                    listed_at = time.monotonic()
                left = self._resync_s - (time.monotonic() - listed_at)
                self._follow(max(1, int(left)))
                failures = 0
            except ApiException as exc:
                if self._stopping.is_set():
                    return
                if exc.status == 410:
                    self.gone += 1
                    log.info("%s: resourceVersion expired (410); re-listing", self.what)
                    self._version = None
                    continue
                failures = self._failed(failures, f"HTTP {exc.status} {exc.reason}")
            except Exception as exc:  # connection reset, timeout, bad chunk: reconnect
                if self._stopping.is_set():
                    return
                failures = self._failed(failures, f"{type(exc).__name__}: {exc}")

    def _failed(self, failures: int, why: str) -> int:
        self.errors += 1
        wait = min(MAX_BACKOFF_S, self._backoff_s * 2**failures)
        log.warning("%s: %s; reconnecting in %.1f s", self.what, why, wait)
        self._stopping.wait(wait)
        # After a broken connection events may have been missed: list again.
        self._version = None
        return failures + 1

    def _relist(self) -> str:
        response = self._list_call(label_selector=self._selector, _preload_content=False)
        listing = json.loads(response.data)
        fresh = {item["metadata"]["name"]: item for item in listing.get("items") or []}
        with self._lock:
            gone = [obj for name, obj in self._objects.items() if name not in fresh]
            changed = [
                obj
                for name, obj in fresh.items()
                if name not in self._objects
                or self._version_of(self._objects[name]) != self._version_of(obj)
            ]
            self._objects, self._index = {}, {}
            for name, obj in fresh.items():
                self._put(name, obj)
        self.lists += 1
        for obj in gone:
            self._notify(obj)
        for obj in changed:
            self._notify(obj)
        self.synced.set()
        return str(listing["metadata"]["resourceVersion"])

    @staticmethod
    def _version_of(obj: Obj | None) -> str | None:
        return None if obj is None else obj["metadata"].get("resourceVersion")

    def _follow(self, seconds: int) -> None:
        """One watch request from ``self._version``, ended by the server after ``seconds``."""
        stream = watch.Watch(return_type="object")  # type: ignore[no-untyped-call]
        self._watch = stream
        self.watches += 1
        try:
            if self._stopping.is_set():
                return
            for event in stream.stream(  # type: ignore[no-untyped-call]
                self._list_call,
                label_selector=self._selector,
                resource_version=self._version,
                allow_watch_bookmarks=True,
                timeout_seconds=seconds,
                # The server ends the watch after `seconds`; a silent dead connection must not
                # block us for ever.
                _request_timeout=seconds + 30,
            ):
                obj: Obj = event["raw_object"]
                version = obj.get("metadata", {}).get("resourceVersion")
                if version:
                    self._version = str(version)
                kind = event["type"]
                if kind == "BOOKMARK":
                    continue
                name = obj["metadata"]["name"]
                with self._lock:
                    self._put(name, None if kind == "DELETED" else obj)
                self._notify(obj)
                if self._stopping.is_set():
                    return
        finally:
            self._watch = None
