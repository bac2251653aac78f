"""Fetch some of the wheels that build_base.py serves, into a folder, inside a base image build.

    python3 fetch_wheels.py URL DEST --include 'nvidia_*' [--include ...] [--exclude 'nvidia_*_cu13-*']

URL serves the wheels and lists their names in `wheels.txt`. The base Dockerfile installs the
wheels in a few groups, one layer each, so that a push compresses and uploads the ~6 GB in
parallel instead of as one huge layer.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import urllib.request
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url", help="the wheel server, ending in /")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--include", action="append", required=True, help="file name pattern to fetch")
    parser.add_argument("--exclude", action="append", default=[], help="file name pattern to leave out")
    args = parser.parse_args()
    names = urllib.request.urlopen(args.url + "wheels.txt", timeout=60).read().decode().split()
    chosen = [
        name
        for name in names
        if any(fnmatch.fnmatch(name, p) for p in args.include)
        and not any(fnmatch.fnmatch(name, p) for p in args.exclude)
    ]
    if not chosen:
        print(f"no wheel at {args.url} matches {args.include}", file=sys.stderr)
        return 1
    args.dest.mkdir(parents=True, exist_ok=True)
    for name in chosen:
        urllib.request.urlretrieve(args.url + name, args.dest / name)
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
