#!/usr/bin/env python3
"""Prints each criterion group's median times and their ratios to the group's limit line.

Run after `cargo bench --bench verify --bench normalize`: reads
target/criterion/<group>/<line>/new/estimates.json (the latest run of each line) (or $CARGO_TARGET_DIR's), so the ratios come
from one run.
"""
import json
import os
import sys
from pathlib import Path

LIMITS = ("hmac_limit", "json_value_limit", "sha256_limit")


def main() -> int:
    root = Path(os.environ.get("CARGO_TARGET_DIR", "target")) / "criterion"
    groups: dict[str, dict[str, float]] = {}
    # Criterion writes group `verify/1KiB`, line `svix` to `verify_1KiB/svix/`.
    for estimates in sorted(root.glob("*/*/new/estimates.json")):
        line = estimates.parents[1].name
        group = estimates.parents[2].name
        median_ns = json.loads(estimates.read_text())["median"]["point_estimate"]
        groups.setdefault(group, {})[line] = median_ns
    if not groups:
        print(f"no criterion results under {root}", file=sys.stderr)
        return 1
    for group, lines in groups.items():
        limit = next((lines[name] for name in LIMITS if name in lines), None)
        cells = []
        for line, ns in lines.items():
            ratio = f" ({ns / limit:.2f}x)" if limit else ""
            cells.append(f"{line} {ns / 1000:.3f} us{ratio}")
        print(f"{group}: " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
