"""``--profile``: sample the server with py-spy during each phase and say where its time goes.

py-spy (``pip install py-spy``) runs beside the load generator and costs it some CPU, so a
profiled run's rates are lower than an unprofiled one's: profile in a separate run.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Leaf frames of threads that wait (for a pooled connection, for work, for the GIL-free sqlite
# busy handler): py-spy cannot always tell them idle, and they use no CPU.
_WAITING = (
    "Condition.wait (",
    "Event.wait (",
    "Queue.get (",
    "Thread.join (",
    "_wait_for_tstate_lock (",
)

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy_path() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        sys.exit("ingest: --profile needs py-spy: `.venv/bin/pip install py-spy`")
    return found


@contextmanager
def sampled(pid: int, output: Path) -> Iterator[None]:
    """Record ``pid``'s stacks (collapsed, one line per distinct stack) while the block runs."""
    command = [py_spy_path(), "record", "--pid", str(pid), "--rate", "100", "--format", "raw"]
    command += ["--output", str(output), "--nonblocking"]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def summary(output: Path, top: int = 15) -> str:
    """The functions with the most samples on the stack (inclusive) and at its top (self)."""
    if not output.exists():
        return f"(no profile written to {output})"
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = waiting = 0
    for line in output.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        if frames[-1].startswith(_WAITING):
            waiting += count
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "(no samples)"
    lines = [
        f"{total} samples ({waiting} more of threads waiting, left out); inclusive (on the stack):"
    ]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    ours = [(f, n) for f, n in inclusive.most_common() if "distbench/" in f][:top]
    lines.append("distbench's own functions, inclusive:")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in ours]
    lines.append("self (top of the stack):")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)
