"""Run one benchmark case in a fresh Python process (its own peak RSS, its own thread settings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child(script: str, spec: dict, timeout: float, *, thread_vars=("OMP_NUM_THREADS",)) -> dict:
    """``python script --child JSON(spec)`` with ``OMP_WAIT_POLICY=PASSIVE`` (unless set) and every variable of
    ``thread_vars`` set to ``spec["threads"]``; returns the JSON of its last stdout line, or ``{"error": …}`` on a
    timeout or a non-zero exit (an empty stderr usually means it was killed: out of memory)."""
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for name in thread_vars:
        env[name] = str(spec["threads"])
    try:
        out = subprocess.run(
            [sys.executable, script, "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout > {timeout:.0f} s"}
    if out.returncode != 0:
        tail = (out.stderr or "").strip().splitlines()[-1:] or [f"exit {out.returncode} (killed: out of memory?)"]
        return {"error": tail[0][:160]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def status_gb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process [GB] from /proc/self/status; NaN where unavailable.

    The peak is read from ``VmHWM`` rather than ``ru_maxrss``: the latter survives ``execve`` and so starts a child
    at its parent's resident size (this script's parent holds the compared outputs); ``VmHWM`` belongs to the
    child's own address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")
