"""Profile our trickle server process under one benchmark workload.

Spawns ``python -m trio_trickle trickle-server`` (as trickle_bench.py does),
attaches py-spy to it, drives it with ``trickle_bench.py --server-url`` and
prints where the server's samples went: inclusive and self shares per
function, and the children of one function with ``--focus``.

    pip install py-spy                      # not a project dependency
    python benchmarks/profile_server.py --only latency
    python benchmarks/profile_server.py --only fanout --full --focus TrickleServer._subscribe

``--raw FILE`` keeps py-spy's collapsed stacks (one ``frame;frame;... count``
line per stack) for other tools. py-spy counts a thread waiting in
``epoll_wait`` as busy, so ``EpollIOManager.get_events`` is mostly idle time.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def frame_name(frame: str) -> str:
    """``func (path/file.py:12)`` -> ``func (file.py)``: one name per function."""
    func, _, where = frame.partition(" (")
    return f"{func} ({where.split(':')[0].rsplit('/', 1)[-1]})" if where else func


def summarize(raw: Path, top: int, focus: str | None) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    children: collections.Counter[str] = collections.Counter()
    total = under = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [frame_name(f) for f in stack.split(";")]
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
        if focus is not None:
            hits = [i for i, name in enumerate(frames) if name.startswith(focus)]
            if hits:
                under += n
                below = frames[hits[-1] + 1 : hits[-1] + 2]
                children[below[0] if below else "<self>"] += n
    if not total:
        raise SystemExit("py-spy recorded no samples")
    print(f"samples: {total}")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"--- {title}")
        for name, n in counter.most_common(top):
            print(f"{100 * n / total:5.1f}%  {name}")
    if focus is not None:
        print(f"--- children of {focus} ({100 * under / total:.1f}% of samples)")
        for name, n in children.most_common(top):
            print(f"{100 * n / max(under, 1):5.1f}%  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="latency", help="trickle_bench.py workloads (latency)")
    parser.add_argument("--full", action="store_true", help="full sizes instead of --quick")
    parser.add_argument("--repeat", type=int, default=3, help="workload passes (3)")
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second (500)")
    parser.add_argument("--top", type=int, default=30, help="rows per table (30)")
    parser.add_argument("--focus", help="also break down the callees of this function")
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise SystemExit("py-spy not found: pip install py-spy")
    sys.path.insert(0, str(HERE))
    from trickle_bench import spawn_ours

    proc, url = spawn_ours()
    raw = args.raw or Path(tempfile.mkstemp(suffix=".txt")[1])
    record = [py_spy, "record", "-r", str(args.rate), "-f", "raw", "-o", str(raw)]
    spy = subprocess.Popen(
        [*record, "--pid", str(proc.pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)  # py-spy attaches
        bench = [sys.executable, str(HERE / "trickle_bench.py"), "--server-url", url]
        bench += ["--only", args.only, "--repeat", str(args.repeat)]
        subprocess.run(bench if args.full else [*bench, "--quick"], check=True)
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=30)
        proc.terminate()
        proc.wait(timeout=10)
    summarize(raw, args.top, args.focus)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
