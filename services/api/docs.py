"""The docs page: Swagger UI (vendored in static/swagger-ui) over /openapi.json, every file from this server.

Each file has a fixed URL and a fixed path in ASSETS; a request's path never becomes a file path.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"
PAGE = STATIC / "docs.html"
JAVASCRIPT = "text/javascript; charset=utf-8"
ASSETS: dict[str, tuple[Path, str]] = {
    "/docs/docs.js": (STATIC / "docs.js", JAVASCRIPT),
    "/docs/swagger-ui/swagger-ui-bundle.js": (STATIC / "swagger-ui" / "swagger-ui-bundle.js", JAVASCRIPT),
    "/docs/swagger-ui/swagger-ui.css": (STATIC / "swagger-ui" / "swagger-ui.css", "text/css; charset=utf-8"),
}
# Only this origin's files and calls, as strict as the monitor's dashboard: Swagger UI 5 runs with no
# inline script, eval or inline style (React sets styles through the DOM, which CSP allows), so none is
# allowed; the browser test opens operations and the Authorize dialog under it. Try-it-out calls are
# same-origin; a 307 to the object store (GET /jobs/{id}/output on S3) is not followed from this page.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
# Revalidated after an hour (FileResponse sends an ETag): a deploy's new Swagger UI is seen the same day.
ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"}
