"""Developer and CI tasks. ``python3 -m nox`` runs the default sessions.

Every dependency comes from pyproject.toml extras, so a fresh machine needs
only Python and nox.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "typecheck", "spec_coverage", "tests", "base_install", "interop"]
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit, property, stateful and loopback integration tests."""
    session.install("-e", ".[test,kafka,media,torch]")
    session.run("pytest", *session.posargs, env={"HYPOTHESIS_PROFILE": "ci"})


@nox.session(python=PYTHON)
def base_install(session: nox.Session) -> None:
    """``pip install trio-trickle`` with no extras: no PyAV, numpy or torch in the venv.

    Builds and installs the wheel, then runs tests/base_install.py: a trickle
    publish/subscribe, a ``Pipeline`` over HTTP and a relaying ``LivePipeline``
    session, through the public API, importing none of the media libraries.
    """
    session.install(".")
    session.run("python", "tests/base_install.py")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and the import-linter layer contracts."""
    session.install("ruff", "import-linter")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # Layer contracts in pyproject.toml; import-linter reads the source, imports nothing.
    session.run("lint-imports", env={"PYTHONPATH": "src"})


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src."""
    session.install("-e", ".[lint,media,torch]")
    session.run("mypy", "--strict", "src/trio_trickle")


@nox.session(python=PYTHON)
def spec_coverage(session: nox.Session) -> None:
    """List every spec requirement with the tests citing it; fail on an uncited MUST."""
    session.install("-e", ".[test,kafka,media,torch]")
    session.run("python", "tests/spec_coverage.py")


@nox.session(python=PYTHON)
def fuzz(session: nox.Session) -> None:
    """Raw-socket fuzz of the trickle server and both runners: 10,000 connections each.

    Prints one JSON tally per server (connections, requests, answers by status,
    closes, hangs, crashes); ``nox -s fuzz -- N`` plays N connections each.
    """
    session.install("-e", ".[test,media,torch]")
    examples = session.posargs[0] if session.posargs else "10000"
    session.run(
        "pytest",
        "-s",
        "-q",
        "-p",
        "no:cacheprovider",
        # Each test plays its 10,000 connections for minutes: no traceback dump.
        "-o",
        "faulthandler_timeout=0",
        "tests/integration/test_fuzz_http.py",
        env={"HYPOTHESIS_PROFILE": "ci", "TRIO_TRICKLE_FUZZ_EXAMPLES": examples},
    )


LIVEPEER_GATEWAY = "livepeer-gateway==1.0.0"


def _python312() -> str:
    """``3.12`` where ``python3.12`` runs; else pyenv's 3.12, whose shim needs it selected."""
    try:
        subprocess.run(["python3.12", "--version"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
        found = sorted(root.glob("versions/3.12*/bin/python3.12"))
        if found:
            return str(found[-1])
    return "3.12"


@nox.session(python=_python312())
def interop(session: nox.Session) -> None:
    """Our orchestrator driven by the published Python gateway client (PyPI), offchain.

    ``livepeer-gateway`` needs Python >= 3.12; tests/interop/ registers its
    runner with our orchestrator, and reserves, calls and stops a session on
    our runner through it, over real sockets.
    """
    session.install("-e", ".[test]", LIVEPEER_GATEWAY)
    session.run("pytest", "-q", "-p", "no:cacheprovider", "tests/interop", *session.posargs)


BENCHES = {"trickle": "benchmarks/trickle_bench.py", "frames": "benchmarks/frame_loop.py"}


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks, JSON lines on stdout: ``nox -s bench -- trickle|frames [options]``."""
    session.install("-e", ".[media,torch]")
    name, *rest = session.posargs or ["trickle"]
    if name not in BENCHES:
        session.error(f"unknown benchmark {name!r}; choose from {sorted(BENCHES)}")
    session.run("python", BENCHES[name], *rest)
