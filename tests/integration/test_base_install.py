"""A base install (no ``media``/``torch`` extras) serves trickle, a Pipeline and a relay.

``nox -s base_install`` runs ``tests/base_install.py`` where PyAV, numpy and torch
are really absent; here the same script runs in the full test venv with those
imports blocked, so the suite catches a stray media import without a second venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "base_install.py"


@pytest.mark.spec("RUN-129")
def test_base_install_works_without_pyav_numpy_or_torch() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--block-media"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {
        "media_libraries_imported": [],
        "predict": "ok",
        "relayed_segments": 5,
        "trickle_segments": 3,
    }


def test_the_check_fails_when_a_media_library_is_importable() -> None:
    """Without the blocker the full venv has PyAV: the script will not call it a base install."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "importable" in done.stdout
