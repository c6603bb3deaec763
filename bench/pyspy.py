"""Sample a running process with py-spy and write a readable text profile.

``record(pid, seconds, out)`` runs ``py-spy record --format raw`` (collapsed
stacks) on ``pid`` and writes ``out``: the functions with the most samples
on-CPU by themselves (self) and including callees (inclusive), then the
heaviest stacks. Idle samples are left out (``--idle`` is not passed).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path


def _frame(raw: str) -> str:
    # py-spy frames look like "function (path/to/file.py:123)"; drop the line number.
    name, _, where = raw.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})" if where else name


def summarise(collapsed: str, title: str, top: int = 40) -> str:
    """A text report of py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    stacks: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if f]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
        stacks[" <- ".join(reversed(frames[-6:]))] += n
    lines = [title, "=" * len(title), f"samples on CPU: {total}", ""]
    for label, counter in (("self", own), ("inclusive", inclusive)):
        lines.append(f"-- top {top} by {label} samples --")
        for name, n in counter.most_common(top):
            lines.append(f"{100 * n / max(total, 1):6.2f}%  {name}")
        lines.append("")
    lines.append("-- heaviest stacks (innermost first, 6 frames) --")
    for name, n in stacks.most_common(25):
        lines.append(f"{100 * n / max(total, 1):6.2f}%  {name}")
    return "\n".join(lines) + "\n"


def record(pid: int, seconds: float, out: Path, title: str) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` for ``seconds`` in the background; ``finish`` writes ``out``."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    raw = Path(tempfile.mkstemp(suffix=".txt")[1])
    proc = subprocess.Popen(  # noqa: S603
        [binary, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "250",
         "--format", "raw", "--nonblocking", "--output", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    proc.out = out  # type: ignore[attr-defined]
    proc.raw = raw  # type: ignore[attr-defined]
    proc.title = title  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen[bytes]) -> None:
    """Wait for py-spy and write the summary."""
    proc.wait(timeout=120)
    raw: Path = proc.raw  # type: ignore[attr-defined]
    out: Path = proc.out  # type: ignore[attr-defined]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(summarise(raw.read_text(), proc.title))  # type: ignore[attr-defined]
    raw.unlink(missing_ok=True)
