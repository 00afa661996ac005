"""Print every spec requirement with the tests that cite it; fail on gaps.

Run by ``nox -s spec_coverage``. A requirement is a list item of the form
``- **TRK-001** (MUST) ...`` in a ``spec/*.md`` document. A document whose
header says ``Status: implemented`` must have every MUST / MUST NOT cited by at
least one collected test (``@pytest.mark.spec("TRK-001")``). Citing an ID that
no document defines is also a failure: it is a typo or a stale test.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQ = re.compile(
    r"^\s*[-*]\s+\*\*([A-Z]{2,5}-\d{3})\*\*\s+\((MUST NOT|MUST|SHOULD NOT|SHOULD|MAY)\)"
)
STATUS = re.compile(r"^Status:\s*(.+?)\s*$", re.MULTILINE)


def parse_spec(path: Path) -> tuple[bool, list[tuple[str, str]]]:
    text = path.read_text(encoding="utf-8")
    status = STATUS.search(text)
    implemented = bool(status) and status.group(1).strip().lower().startswith("implemented")
    reqs = [(m.group(1), m.group(2)) for line in text.splitlines() if (m := REQ.match(line))]
    return implemented, reqs


def collect_citations() -> dict[str, list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "spec.json"
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", f"--spec-report={report}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 or not report.exists():
            sys.stdout.write(proc.stdout + proc.stderr)
            raise SystemExit("spec_coverage: test collection failed")
        cited: dict[str, list[str]] = json.loads(report.read_text())
        return cited


def main() -> int:
    cited = collect_citations()
    failures: list[str] = []
    defined: set[str] = set()
    for doc in sorted((ROOT / "spec").glob("*.md")):
        implemented, reqs = parse_spec(doc)
        state = "implemented" if implemented else "not yet implemented"
        print(f"\n{doc.relative_to(ROOT)} ({state}, {len(reqs)} requirements)")
        seen: set[str] = set()
        for req_id, level in reqs:
            if req_id in seen:
                failures.append(f"{req_id} defined twice in {doc.name}")
            seen.add(req_id)
            defined.add(req_id)
            tests = cited.get(req_id, [])
            mark = (
                "ok " if tests else ("!! " if implemented and level.startswith("MUST") else "-- ")
            )
            print(f"  {mark}{req_id} ({level}): {len(tests)} test(s)")
            for node in tests[:3]:
                print(f"        {node}")
            if len(tests) > 3:
                print(f"        ... and {len(tests) - 3} more")
            if implemented and level.startswith("MUST") and not tests:
                failures.append(f"{req_id} ({level}) in implemented {doc.name} has no test")
    for req_id in sorted(set(cited) - defined):
        failures.append(f"tests cite {req_id}, which no spec document defines: {cited[req_id][:2]}")
    print()
    if failures:
        print(f"spec_coverage: {len(failures)} problem(s)")
        for line in failures:
            print(f"  FAIL {line}")
        return 1
    print(f"spec_coverage: ok ({len(defined)} requirements, {len(cited)} cited)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
