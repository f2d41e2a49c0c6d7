"""Container healthcheck: exit 0 when GET <url> answers 2xx, else 1 (stdlib only; the image has no curl).

Usage: python healthcheck.py [URL]   (default http://127.0.0.1:8080/health)
"""

import sys
import urllib.request

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/health"
try:
    with urllib.request.urlopen(url, timeout=5) as resp:
        sys.exit(0 if 200 <= resp.status < 300 else 1)
except Exception as exc:  # HTTPError (e.g. 503 when a dependency is down), URLError, timeout
    print(f"unhealthy: {url}: {exc}", file=sys.stderr)
    sys.exit(1)
