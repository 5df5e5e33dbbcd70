"""`python -m shared.healthcheck`: the image's HEALTHCHECK, a GET of /health on the service this container runs."""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

# The HTTP services' default ports (their settings classes), for a container started without PORT.
DEFAULT_PORTS = {"services.api": 8000, "services.monitor": 8001}


def health_url(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """Where the service started as `argv` answers /health; None for one that serves no HTTP (the worker)."""
    module = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else None
    if module not in DEFAULT_PORTS:
        return None
    return f"http://127.0.0.1:{environ.get('PORT') or DEFAULT_PORTS[module]}/health"


def probe(url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:  # a 503 (HTTPError), a refused connection, a timeout: unhealthy all the same
        return False


def main() -> None:
    # The start command is PID 1 (exec form, no shell), so its argv says which service this container is;
    # one image serves all three, and Docker runs the same check in each.
    argv = Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    url = health_url(argv, os.environ)
    sys.exit(0 if url is None or probe(url) else 1)


if __name__ == "__main__":
    main()
