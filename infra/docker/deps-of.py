"""Print the requirements of a pyproject.toml (plus the named extras), one per line, for `pip install -r`.

The images install these before copying the package's source, so a source change reuses the dependency layer.
Usage: python3 deps-of.py PYPROJECT [EXTRA ...]
"""

import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
extras = project.get("optional-dependencies", {})
print("\n".join([*project.get("dependencies", []), *(r for e in sys.argv[2:] for r in extras[e])]))
