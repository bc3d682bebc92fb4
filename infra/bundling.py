"""The Lambda asset: the `trainer` package plus its pip requirements, bundled without Docker.

pip downloads manylinux wheels for the functions' architecture and the Lambda runtime's Python
(`trainer.contract.functions`), whatever Python runs the CDK app. Both platform tags are needed:
numpy >= 2.3 only ships manylinux_2_28 wheels, and with the 2014 tag alone pip silently falls
back to an older numpy.
"""

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from infra.paths import LAMBDAS_DIR
from trainer.contract.functions import LAMBDA_ARCHITECTURE

PACKAGE: Final = "trainer"
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
    "contract/functions.py",
    "contract/statemachines.py",
    "contract/storage.py",
)


def bundle_lambda(output_dir: Path, *, python_version: str) -> None:
    """Fill output_dir with the requirements (aarch64 wheels for python_version) and `trainer`."""
    output_dir.mkdir(parents=True, exist_ok=True)
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
            "--requirement",
            str(REQUIREMENTS),
        ],
        check=True,
    )
    shutil.rmtree(output_dir / "bin", ignore_errors=True)  # console scripts, unusable on Lambda
    shutil.copytree(
        LAMBDAS_DIR / PACKAGE,
        output_dir / PACKAGE,
        ignore=shutil.ignore_patterns(*EXCLUDED),
        dirs_exist_ok=True,
    )
    for relative in NOT_SHIPPED:
        (output_dir / PACKAGE / relative).unlink()


@jsii.implements(ILocalBundling)
class LocalPipBundling:
    """Runs bundle_lambda on this machine; CDK never falls back to Docker."""

    def __init__(self, *, python_version: str) -> None:
        self.python_version = python_version

    # jsii passes the BundlingOptions positionally (its typing stub says keywords); unused here.
    def try_bundle(self, output_dir: str, *_options: Any, **_keyword_options: Any) -> bool:
        bundle_lambda(Path(output_dir), python_version=self.python_version)
        return True


def lambda_code(runtime: lambda_.Runtime) -> lambda_.Code:
    """One asset for every function: they share the package and its dependencies."""
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
