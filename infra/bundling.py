"""The Lambda assets, bundled without Docker: one per package of `trainer.contract.functions`.

* `trainer` (the workflow's functions and the API): the `trainer` package, the three stdlib-only
  modules of `inference` it imports (the production pointer's one spelling), and every pip
  requirement (`lambdas/requirements.txt`).
* `inference` (the prediction functions): numpy alone, `trainer/__init__.py`, `trainer/nn/`
  (the forward pass) and the `inference` package (docs/inference.md, "What the stack needs").

pip downloads manylinux wheels for the functions' architecture and the Lambda runtime's Python
(`trainer.contract.functions`), whatever Python runs the CDK app. Both platform tags are needed:
numpy >= 2.3 only ships manylinux_2_28 wheels, and with the 2014 tag alone pip silently falls
back to an older numpy.

Asset hashes: the trainer asset hashes its source folder (`lambdas/`, caches excluded), as CDK
does by default. The inference asset hashes exactly what it ships (`inference_asset_hash`: the
numpy pin, the target and each shipped file), so a change to the trainer's other modules does
not redeploy the prediction functions, and any change to what they run does.
"""

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from infra.paths import LAMBDAS_DIR
from trainer.contract.functions import LAMBDA_ARCHITECTURE, Package

PACKAGE: Final = "trainer"
INFERENCE: Final = "inference"
REQUIREMENTS: Final = LAMBDAS_DIR / "requirements.txt"
# Lambda's architecture name -> the machine name in manylinux platform tags.
MACHINES: Final = {"arm64": "aarch64", "x86_64": "x86_64"}
PLATFORMS: Final = tuple(
    f"{tag}_{MACHINES[LAMBDA_ARCHITECTURE]}" for tag in ("manylinux_2_28", "manylinux2014")
)
# Never shipped, and kept out of the asset hash so that running tests does not redeploy.
EXCLUDED: Final = ("__pycache__", "*.pyc", "tests", ".pytest_cache", ".mypy_cache")
# Modules of the package that no handler imports (the stack's and the engine's half of the
# contract): not shipped either. tests/infra/test_infra_bundling.py checks no handler reaches them.
NOT_SHIPPED: Final = (
    "contract/api.py",
    "contract/functions.py",
    "contract/statemachines.py",
    "contract/storage.py",
    "contract/wiring.py",
)
# The modules of `inference` the trainer's handlers import (the registry writes the production
# pointer with `inference.pointer`); stdlib only. tests/infra/test_infra_bundling.py follows the
# handlers' imports to check that they need no other.
INFERENCE_FOR_TRAINER: Final = ("__init__.py", "errors.py", "pointer.py")
# What the inference asset holds of `trainer`: the forward pass, nothing that needs pydantic.
TRAINER_FOR_INFERENCE: Final = ("__init__.py", "nn")
# pinned in lambdas/requirements.txt: numpy, and Powertools for the EMF metrics (pure Python;
# with its two dependencies, no pydantic)
INFERENCE_REQUIREMENTS: Final = ("numpy", "aws-lambda-powertools", "jmespath", "typing-extensions")


def _pip_install(output_dir: Path, python_version: str, *requirements: str) -> None:
    """pip-install aarch64 wheels for python_version into output_dir (`-r FILE` or pins)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
            "--implementation",
            "cp",
            "--python-version",
            python_version,
            "--only-binary=:all:",
            "--no-compile",  # .pyc files for the local Python would be dead weight on Lambda
            "--disable-pip-version-check",
            "--quiet",
            "--target",
            str(output_dir),
            *requirements,
        ],
        check=True,
    )
    shutil.rmtree(output_dir / "bin", ignore_errors=True)  # console scripts, unusable on Lambda


def bundle_lambda(output_dir: Path, *, python_version: str) -> None:
    """Fill output_dir with the requirements (aarch64 wheels for python_version), `trainer` and
    the modules of `inference` it imports."""
    output_dir.mkdir(parents=True, exist_ok=True)
    _pip_install(output_dir, python_version, "--requirement", str(REQUIREMENTS))
    shutil.copytree(
        LAMBDAS_DIR / PACKAGE,
        output_dir / PACKAGE,
        ignore=shutil.ignore_patterns(*EXCLUDED),
        dirs_exist_ok=True,
    )
    for relative in NOT_SHIPPED:
        (output_dir / PACKAGE / relative).unlink()
    (output_dir / INFERENCE).mkdir(exist_ok=True)
    for name in INFERENCE_FOR_TRAINER:
        shutil.copy2(LAMBDAS_DIR / INFERENCE / name, output_dir / INFERENCE / name)


def pinned(names: tuple[str, ...] = INFERENCE_REQUIREMENTS) -> list[str]:
    """The pins of ``names`` in lambdas/requirements.txt (``numpy==2.4.6``)."""
    pins = {
        line.split("==")[0].strip(): line.strip()
        for line in REQUIREMENTS.read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    return [pins[name] for name in names]


def inference_files() -> Iterator[tuple[str, Path]]:
    """(path in the asset, source file) of every source file the inference asset ships."""
    roots = [
        (f"{PACKAGE}/{entry}", LAMBDAS_DIR / PACKAGE / entry) for entry in TRAINER_FOR_INFERENCE
    ]
    roots.append((INFERENCE, LAMBDAS_DIR / INFERENCE))
    for target, source in roots:
        paths = sorted(source.rglob("*.py")) if source.is_dir() else [source]
        for path in paths:
            if "__pycache__" not in path.parts:
                yield f"{target}/{path.relative_to(source)}" if source.is_dir() else target, path


def bundle_inference(output_dir: Path, *, python_version: str) -> None:
    """Fill output_dir with numpy and Powertools (aarch64 wheels for python_version),
    `trainer/__init__.py`,
    `trainer/nn/` and `inference/`: nothing of the trainer that needs pydantic."""
    output_dir.mkdir(parents=True, exist_ok=True)
    _pip_install(output_dir, python_version, *pinned())
    for target, source in inference_files():
        (output_dir / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, output_dir / target)


def inference_asset_hash(python_version: str) -> str:
    """sha256 of what the inference asset ships: the pins, the target, every shipped file."""
    digest = hashlib.sha256()
    for part in (*pinned(), python_version, *PLATFORMS):
        digest.update(part.encode() + b"\0")
    for target, source in inference_files():
        digest.update(target.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()


BUNDLERS: Final = {PACKAGE: bundle_lambda, INFERENCE: bundle_inference}


@jsii.implements(ILocalBundling)
class LocalPipBundling:
    """Runs bundle_lambda (or bundle_inference) on this machine; CDK never falls back to Docker."""

    def __init__(self, *, python_version: str, package: Package = "trainer") -> None:
        self.python_version = python_version
        self.package = package

    # jsii passes the BundlingOptions positionally (its typing stub says keywords); unused here.
    def try_bundle(self, output_dir: str, *_options: Any, **_keyword_options: Any) -> bool:
        BUNDLERS[self.package](Path(output_dir), python_version=self.python_version)
        return True


def lambda_code(runtime: lambda_.Runtime) -> lambda_.Code:
    """One asset for every function of the trainer package: they share it and its
    dependencies."""
    python_version = runtime.name.removeprefix("python")
    image: DockerImage = runtime.bundling_image  # required by the API, never pulled
    return lambda_.Code.from_asset(
        str(LAMBDAS_DIR),
        exclude=[f"**/{pattern}" for pattern in EXCLUDED]
        + [f"{PACKAGE}/{relative}" for relative in NOT_SHIPPED],
        bundling=BundlingOptions(
            image=image, local=LocalPipBundling(python_version=python_version)
        ),
    )


def inference_code(runtime: lambda_.Runtime) -> lambda_.Code:
    """The prediction functions' asset (numpy, trainer.nn, inference), hashed by its contents
    (the source folder CDK is given is only where bundling starts: it copies what it ships)."""
    python_version = runtime.name.removeprefix("python")
    image: DockerImage = runtime.bundling_image  # required by the API, never pulled
    return lambda_.Code.from_asset(
        str(LAMBDAS_DIR / INFERENCE),
        asset_hash=inference_asset_hash(python_version),
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(
            image=image,
            local=LocalPipBundling(python_version=python_version, package="inference"),
        ),
    )
