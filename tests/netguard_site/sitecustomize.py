"""Installs the test network guard in subprocesses started with `netguard.guarded_env`."""

import importlib.util
import os
from pathlib import Path

if os.environ.get("NETGUARD_REPORT"):
    _spec = importlib.util.spec_from_file_location("netguard", Path(__file__).parent.parent / "netguard.py")
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    _module.install()
