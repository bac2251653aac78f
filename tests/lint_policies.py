"""parliament over the IAM policy documents the project generates (`pipeline/governance/policies.py`).

A finding of MEDIUM or above fails, and so do unknown actions and service prefixes (parliament rates
them LOW, but a misspelt action is a permission that silently does not exist). parliament 1.6.4
still imports `pkg_resources`, which setuptools 80+ no longer ships: the stand-in below answers the
one call it makes (the path of its bundled data files).

    .venv/bin/python tests/lint_policies.py --env dev     # prints the findings; exit 1 if any
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from importlib.resources import files
from pathlib import Path

SEVERITIES = ("MEDIUM", "HIGH", "CRITICAL")
ALSO_FAILING = {"UNKNOWN_ACTION", "UNKNOWN_PREFIX", "UNKNOWN_CONDITION_FOR_ACTION", "MALFORMED"}


def _parliament():
    if "pkg_resources" not in sys.modules:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, name: str(files(package) / name)  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
    import parliament

    return parliament


def policy_findings(policy: dict) -> list[str]:
    """The failing findings of one identity policy, one line each."""
    parliament = _parliament()
    analysed = parliament.analyze_policy_string(json.dumps(policy))
    findings = [parliament.enhance_finding(finding) for finding in analysed.findings]  # adds severity
    failing = [f for f in findings if f.severity in SEVERITIES or f.issue in ALSO_FAILING]
    return [f"{f.issue} ({f.severity}): {f.detail} {f.location}" for f in failing]


def config_findings(env: str) -> dict[str, list[str]]:
    from pipeline.config import load_config
    from pipeline.governance.policies import role_policies

    return {
        role: found
        for role, policy in role_policies(load_config(env)).items()
        if (found := policy_findings(policy))
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", action="append", help="environment (default: all)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    failed = 0
    for env in args.env or ("dev", "staging", "prod"):
        for role, found in config_findings(env).items():
            failed += len(found)
            for line in found:
                print(f"{env} {role}: {line}")
    print(f"parliament: {failed} finding(s) at MEDIUM or above")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
