"""The README's main command on the quick preset, made once per test session, started as the session starts.

``fastgd compare --preset quick`` (about 80 s, one core) is what tests/test_report.py's ``quick_report`` reads.
Under pytest-xdist the workers share one copy: the first to take the lock in the session's common temporary folder
starts it (:func:`start`), the others find it started. It runs in a background process from the session's first
test on (tests/conftest.py), beside the tests, so that no worker idles while it is made: built inside the fixture,
one worker ran it and the other waited on the lock for its 90 s. The background process writes the command's output
as JSON when it ends; :func:`wait` reads it.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from filelock import FileLock

from rule_cases import readme_plugin

USERS = "quick_report"  # the fixture's name: a session whose tests ask for it starts it
TIMEOUT_SECONDS = 900

# the background process: the command, then its output as JSON, written whole (a reader never sees half of it)
RUNNER = """
import json, os, subprocess, sys
command, record = json.loads(sys.argv[1]), sys.argv[2]
try:
    result = subprocess.run(command, capture_output=True, text=True, timeout=%d)
    made = dict(returncode=result.returncode, stdout=result.stdout, stderr=result.stderr)
except subprocess.TimeoutExpired as error:
    made = dict(returncode=-1, stdout="", stderr=f"timed out: {error}")
with open(record + ".part", "w") as file:
    json.dump(dict(made, args=command), file)
os.replace(record + ".part", record)
""" % TIMEOUT_SECONDS


def _root(tmp_path_factory):
    """This session's folder for it: under pytest-xdist the folder above each worker's own, which every worker of
    the session shares; in one process the session's own."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "quick_report"


def start(tmp_path_factory):
    """Start the command in a background process unless this session's has been started."""
    root = _root(tmp_path_factory)
    with FileLock(str(root.with_name("quick_report.lock"))):
        started = root.with_name("quick_report.started")
        if started.exists():
            return
        root.mkdir(parents=True, exist_ok=True)
        plugin = readme_plugin(root)
        out = root / "latest"
        command = [sys.executable, "-m", "fastgd.cli", "compare", "--preset", "quick", "--out", str(out), "--jobs",
                   "1", "--plugin", str(plugin)]
        subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(command), str(root.with_name("quick_report.json"))],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.write_text(json.dumps(dict(out=str(out), plugin=str(plugin))))


def wait(tmp_path_factory):
    """(the report's folder, the finished command as a CompletedProcess, the plugin's path), once it has ended."""
    start(tmp_path_factory)
    root = _root(tmp_path_factory)
    record = root.with_name("quick_report.json")
    deadline = time.monotonic() + TIMEOUT_SECONDS + 60
    while not record.is_file():
        if time.monotonic() > deadline:
            raise TimeoutError(f"fastgd compare --preset quick wrote no {record} in {TIMEOUT_SECONDS + 60} s")
        time.sleep(0.5)
    made = json.loads(record.read_text())
    paths = json.loads(root.with_name("quick_report.started").read_text())
    result = subprocess.CompletedProcess(made["args"], made["returncode"], made["stdout"], made["stderr"])
    return Path(paths["out"]), result, Path(paths["plugin"])
