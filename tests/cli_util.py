"""Helpers shared by the command-line tests."""

from __future__ import annotations

import pytest

from affseg.cli import main


def cli_error(capsys: pytest.CaptureFixture[str], argv: list[object]) -> str:
    """Run the CLI; assert exit 2 and one ``affseg: error:`` line; return that line."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, (rc, err)
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("affseg: error: "), err
    return lines[0]
