"""``sam build`` builds every function and layer with ``BuildMethod: makefile`` by running
``make build-<LogicalId>`` with the Makefile in its code directory: each one has its target."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def test_makefile_builds_have_their_targets(template: dict[str, Any], root: Path) -> None:
    """``sam build`` runs ``make build-<LogicalId>`` in the code's directory for ``BuildMethod: makefile``."""
    built = 0
    for logical_id, resource in template["Resources"].items():
        if resource.get("Metadata", {}).get("BuildMethod") != "makefile":
            continue
        properties = resource["Properties"]
        code = properties.get("CodeUri") or properties["ContentUri"]
        makefile = (root / code / "Makefile").read_text(encoding="utf-8")
        assert re.search(rf"^build-{logical_id}\s*:", makefile, re.MULTILINE), f"{code}Makefile: build-{logical_id}"
        built += 1
    assert built, "no makefile builds in template.yaml"
