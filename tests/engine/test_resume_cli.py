"""`stepnet resume RUN_ID` on the command line (its own module: the CLI makes its own emulated
account, which cannot live beside another module's in one process)."""

from __future__ import annotations

import pytest

from stepnet.cli import main

pytestmark = pytest.mark.engine


def test_the_cli_refuses_to_resume_an_unknown_run(capsys: pytest.CaptureFixture[str]) -> None:
    # When / Then: one line naming the run, exit status 2, nothing started
    assert main(["resume", "never-was", "--isolation", "threads"]) == 2
    output = " ".join(capsys.readouterr().out.split())
    assert "run 'never-was' is unknown to the local engine's store" in output
