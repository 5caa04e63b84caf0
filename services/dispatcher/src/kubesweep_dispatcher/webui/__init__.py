"""The web UI: one page of static HTML, CSS and vanilla JavaScript (SVG charts, no build
step, no Node.js) that talks to the API with the bearer token the user gives it.

Pages are public shells; every datum comes from ``/api/v1`` with the token, which the page
keeps in sessionStorage and never puts in a URL that reaches the server."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSET_PREFIX = "/ui"
# NNI's routes: overview and trial details; all render the same page.
PAGES = ("/", "/oview", "/detail")

bp = Blueprint("webui", __name__)

_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _page() -> Response:
    response = send_from_directory(STATIC_DIR, "index.html", max_age=0)
    response.headers.update(_HEADERS)
    return response


for _path in PAGES:
    bp.add_url_rule(_path, f"page{_path.replace('/', '_')}", _page)


@bp.get(f"{ASSET_PREFIX}/<path:name>")
def asset(name: str) -> Response:
    response = send_from_directory(STATIC_DIR, name, max_age=300)
    response.headers.update(_HEADERS)
    return response
