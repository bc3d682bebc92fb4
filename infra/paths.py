"""Where the Lambda sources live, from this file (never from the working directory).

The ASL files are not found through a path: they are package data of the contract
(`trainer.contract.statemachines.definition_text`).
"""

from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
LAMBDAS_DIR: Final = REPO_ROOT / "lambdas"
