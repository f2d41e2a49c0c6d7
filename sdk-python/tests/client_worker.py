"""A worker process for the client tests (not a test module); configured by the BATON_* environment.

``clt.echo`` echoes its payload. ``clt.picky`` dead-letters anything but ``null`` or ``{"fixed": true}``,
so a redrive with a fixed input (or with ``null``) completes the run and one without input fails again.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from baton import NonRetryableError, Worker


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    worker = Worker()
    worker.register("clt.echo", lambda payload: {"echo": payload})

    @worker.action("clt.picky")
    def picky(payload: Any) -> dict[str, Any]:
        if payload is None:
            return {"picky": None}
        if payload == {"fixed": True}:
            return {"picky": "fixed"}
        raise NonRetryableError(f"not fixed: {payload!r}")

    worker.start(drain_timeout=5)


if __name__ == "__main__":
    main()
