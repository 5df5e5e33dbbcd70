"""`python -m services.api`: serve the ingest API until SIGTERM."""

from __future__ import annotations

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.http.serve import serve


def main() -> None:
    serve("api", ApiSettings, create_app)


if __name__ == "__main__":
    main()
