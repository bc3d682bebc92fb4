"""Where the deployable sources live, from this file (never from the working directory)."""

from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
LAMBDAS_DIR: Final = REPO_ROOT / "lambdas"
STATEMACHINE_DIR: Final = REPO_ROOT / "statemachine"
