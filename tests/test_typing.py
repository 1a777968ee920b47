"""gtn/ keeps its strict typing (pyproject's [tool.mypy]: strict for gtn.*)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_gtn_type_checks_strictly() -> None:
    api = pytest.importorskip("mypy.api")
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--strict",
                                "--cache-dir", str(ROOT / ".mypy_cache"), str(ROOT / "gtn")])
    assert status == 0, out + err
