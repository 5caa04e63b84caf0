"""Raw-JSON access to the API server for the test fakes: requests and list-then-watch loops.

The fakes talk plain JSON dicts, not the client's pydantic models: they copy pod templates and
statuses verbatim, and a model round-trip could drop or reshape fields they must preserve.

``kubernetes.watch.Watch`` is avoided on purpose: with ``deserialize=False`` it mis-reads ERROR
events (it looks for ``raw_object``), and we want explicit 410 re-list handling and a stop that
unblocks a pending read immediately (socket shutdown) instead of waiting for a watch timeout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger(__name__)


def request(
    api: client.ApiClient,
    method: str,
    path: str,
    body: Any = None,
    *,
    query: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> Any:
    """One API call on raw JSON; non-2xx raises ``ApiException`` with the server's status."""
    response = _send(api, method, path, body, query, content_type)
    data = response.read()
    if not 200 <= response.status < 300:
        raise client.ApiException(status=response.status, reason=response.reason, body=data)
    return json.loads(data) if data else None


def _send(
    api: client.ApiClient,
    method: str,
    path: str,
    body: Any,
    query: dict[str, str] | None,
    content_type: str = "application/json",
) -> Any:
    # Straight to the REST layer: the typed API methods validate their arguments with pydantic,
    # whose first call per method costs ~1-2 s to build - and the fakes want plain dicts anyway.
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    url = api.param_serialize(
        method=method,
        resource_path=path,
        query_params=list((query or {}).items()),
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    return api.call_api(*url)


Handler = Callable[[str, dict[str, Any]], None]


class Watcher(threading.Thread):
    """Calls ``handler(event_type, obj)`` for every object of a collection, from this thread.

    On start (and after every 410 Gone) the collection is listed and each item is delivered as
    ``"ADDED"``; then ``MODIFIED``/``DELETED``/``ADDED`` events follow from the list's
    resourceVersion. Handler exceptions are logged and kept in ``errors`` (the fixtures fail the
    test with them) but never stop the loop.
    """

    def __init__(
        self,
        api: client.ApiClient,
        path: str,
        handler: Handler,
        name: str,
        query: dict[str, str] | None = None,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._api = api
        self._path = path
        self._query = dict(query or {})
        self._handler = handler
        self._stopping = threading.Event()
        self._response: Any = None
        self.synced = threading.Event()  # set after the first list has been delivered
        self.errors: list[str] = []

    def stop(self) -> None:
        self._stopping.set()
        response = self._response
        sock = getattr(getattr(response, "connection", None), "sock", None)
        if sock is not None:
            # Unblocks the read in run() at once; close() from here could deadlock on SSL locks.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.join(10)

    def _deliver(self, event_type: str, obj: dict[str, Any]) -> None:
        try:
            self._handler(event_type, obj)
        except Exception as error:  # a fake's bug must not kill its loop; it is reported instead
            log.exception("%s: handler failed on %s", self.name, event_type)
            self.errors.append(f"{type(error).__name__}: {error}")

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                listing = request(self._api, "GET", self._path, query=self._query)
                version = listing["metadata"]["resourceVersion"]
                for item in listing.get("items", []):
                    self._deliver("ADDED", item)
                self.synced.set()
                while not self._stopping.is_set():
                    version = self._watch_once(version)
            except client.ApiException as error:
                if error.status != 410:  # 410: our resourceVersion was compacted; re-list
                    log.warning("%s: %s; retrying", self.name, error)
                    self._stopping.wait(0.5)
            except Exception:
                if self._stopping.is_set():
                    return
                log.exception("%s: watch failed; re-listing", self.name)
                self._stopping.wait(0.5)

    def _watch_once(self, version: str) -> str:
        query = {
            **self._query,
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "300",
        }
        rest = _send(self._api, "GET", self._path, None, query)
        if not 200 <= rest.status < 300:
            raise client.ApiException(status=rest.status, reason=rest.reason, body=rest.read())
        response = rest.response  # the urllib3 response, read incrementally
        self._response = response
        try:
            if self._stopping.is_set():  # stop() may have run before _response was visible
                return version
            for line in iter_resp_lines(response):
                if self._stopping.is_set():
                    break
                if not line:
                    continue
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR":
                    raise client.ApiException(status=obj.get("code"), reason=obj.get("message"))
                version = obj["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    self._deliver(event["type"], obj)
        finally:
            self._response = None
            response.release_conn()
        return version
