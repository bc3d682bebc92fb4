"""The project as a user has it: installed from a wheel (not editable) into a fresh virtual
environment, and run from a folder that is not the repository.

The new environment takes its dependencies from this one (a ``.pth`` line naming this
environment's site-packages) and installs only the project itself, so the test needs no network
beyond the build backend pip's build isolation fetches (usually from its cache).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_INPUTS = ("pyproject.toml", "README.md", "stepnet", "lambdas", "statemachine")
FUSED_EXAMPLE = REPO / "examples" / "digits-fused.json"
OUTPUTS = {"model.npz", "model.json", "metrics.json"}
NOT_RUNTIME = {"sklearn", "matplotlib", "torch", "bench"}  # dev and bench extras, the bench


def _run(command: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the project pip-installed from a copy of its sources."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"  # a copy: the build writes build/ and *.egg-info beside its input
    for name in BUILD_INPUTS:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(origin, source / name)
    target = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    python = target / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], root)
    (Path(site.stdout.strip()) / "dependencies.pth").write_text(
        sysconfig.get_path("purelib") + "\n"  # this environment's packages, after the venv's own
    )
    installed = _run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--ignore-installed", str(source)],
        root, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return target


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """An empty folder with the fused digits example, shortened to one epoch."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    config = json.loads(FUSED_EXAMPLE.read_text()) | {"epochs": 1}
    (folder / "digits.json").write_text(json.dumps(config))
    return folder


def test_nothing_in_stepnet_imports_a_dev_or_bench_package() -> None:
    # Given every module of the CLI package
    found = []
    for path in sorted((REPO / "stepnet").rglob("*.py")):
        # When its imports, at the top or inside functions, are listed
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            found += [
                f"{path.relative_to(REPO)}: {m}" for m in modules if m.split(".")[0] in NOT_RUNTIME
            ]

    # Then none is outside the runtime dependencies
    assert found == []


@pytest.mark.slow
def test_the_installed_packages_are_the_wheels_with_their_data(venv: Path, elsewhere: Path) -> None:
    # When the installed interpreter imports the packages, from an unrelated folder
    probe = (
        "import json, stepnet, trainer; from importlib import resources; print(json.dumps(["
        "stepnet.__file__, trainer.__file__, "
        "sorted(p.name for p in resources.files('trainer.contract.statemachine').iterdir()), "
        "resources.files('trainer.builtin').joinpath('digits.npz').is_file()]))"
    )
    result = _run([str(venv / "bin" / "python"), "-c", probe], elsewhere)

    # Then they come from the environment, not the repository, and carry their data
    assert result.returncode == 0, result.stderr
    stepnet_file, trainer_file, asl, digits = json.loads(result.stdout)
    assert Path(stepnet_file).is_relative_to(venv) and Path(trainer_file).is_relative_to(venv)
    assert {"training.asl.json", "epoch.asl.json"} <= set(asl)
    assert digits


@pytest.mark.slow
def test_reference_and_cost_run_from_anywhere(venv: Path, elsewhere: Path) -> None:
    # When the installed command trains in memory and prices the run
    reference = _run(
        [str(venv / "bin" / "stepnet"), "reference", "digits.json", "--out", "r"], elsewhere
    )
    cost = _run([str(venv / "bin" / "stepnet"), "cost", "digits.json", "--json"], elsewhere)

    # Then both work, from the builtin dataset shipped in the package
    assert reference.returncode == 0, reference.stdout + reference.stderr
    assert {p.name for p in (elsewhere / "r").iterdir()} == OUTPUTS
    assert cost.returncode == 0, cost.stdout + cost.stderr
    estimate = json.loads(cost.stdout)
    assert estimate["n_train"] == 1437  # the shipped digits, split in blocks as the run splits them


@pytest.mark.slow
def test_local_runs_from_anywhere(venv: Path, elsewhere: Path) -> None:
    # When the installed command trains on the local engine
    result = _run([str(venv / "bin" / "stepnet"), "local", "digits.json", "--out", "o"], elsewhere)

    # Then it succeeds and writes the model, its document and the metrics
    assert result.returncode == 0, result.stdout + result.stderr
    assert {p.name for p in (elsewhere / "o").iterdir()} >= OUTPUTS
