"""Running ``snnfpga`` as a user does (a subprocess: exit codes, streams, the JSON line)."""

import json
import subprocess
import sys


def cli(*args, timeout=600, env=None, cwd=None) -> subprocess.CompletedProcess:
    """``snnfpga ARGS...`` in a subprocess; text output captured."""
    return subprocess.run([sys.executable, "-m", "snnfpga.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def last_json(stdout: str) -> dict:
    """The JSON object a ``--json`` command prints as its last line."""
    return json.loads(stdout.strip().splitlines()[-1])
