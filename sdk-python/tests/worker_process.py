"""A worker process for the signal tests (not a test module).

Every ``hold`` job appends its job id to the ledger file when it starts, then holds for ``HOLD_S``
seconds before completing. Configuration comes from the BATON_* environment, as in production.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from baton import JobContext, Worker


def main() -> None:
    ledger, hold_s = sys.argv[1], float(sys.argv[2])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    worker = Worker()

    @worker.action("hold")
    def hold(payload: Any, ctx: JobContext) -> dict[str, Any]:
        with open(ledger, "a") as f:
            f.write(f"{ctx.job_id}\n")
        time.sleep(hold_s)
        return {"held_by": os.getpid()}

    worker.start(drain_timeout=20)


if __name__ == "__main__":
    main()
