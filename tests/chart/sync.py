"""Regenerate (--write) or check (--check, the default) the files generated from the chart
and from policies/: deploy/portier.yaml and the default policies in charts/portier/values.yaml.

    tests/chart/.venv/bin/python tests/chart/sync.py --write
(or: bash tests/chart/run.sh --update)
"""

from __future__ import annotations

import argparse
import sys

import yaml

import chartlib


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the generated files")
    args = parser.parse_args()
    stale = []

    policies = chartlib.repo_policies()
    if policies is None:
        print("policies/: no policy files, values.yaml policies left as they are", file=sys.stderr)
    elif yaml.safe_load(yaml.safe_dump(chartlib.chart_default_policies())) != policies:
        stale.append(chartlib.VALUES_FILE)
        if args.write:
            chartlib.VALUES_FILE.write_text(chartlib.values_with_policies(policies))

    # After the values (deploy/ renders them).
    want = chartlib.deploy_manifest()
    have = chartlib.DEPLOY_FILE.read_text() if chartlib.DEPLOY_FILE.exists() else None
    if have != want:
        stale.append(chartlib.DEPLOY_FILE)
        if args.write:
            chartlib.DEPLOY_FILE.parent.mkdir(exist_ok=True)
            chartlib.DEPLOY_FILE.write_text(want)

    for path in stale:
        verb = "rewrote" if args.write else "out of date:"
        print(f"{verb} {path.relative_to(chartlib.REPO)}", file=sys.stderr)
    return 0 if args.write or not stale else 1


if __name__ == "__main__":
    sys.exit(main())
