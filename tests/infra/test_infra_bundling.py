"""The Lambda asset, bundled with pip and no Docker: aarch64 wheels for the runtime's Python."""

import ast
from importlib import metadata
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_

from infra.bundling import NOT_SHIPPED, PACKAGE, bundle_lambda, lambda_code
from infra.functions import PYTHON_VERSION, RUNTIME
from infra.paths import LAMBDAS_DIR
from trainer.contract.functions import FUNCTIONS, handler_module

pytestmark = [pytest.mark.infra, pytest.mark.slow]

LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
CPYTHON = f"cpython-{PYTHON_VERSION.replace('.', '')}"
CP_TAG = f"cp{PYTHON_VERSION.replace('.', '')}"


def _size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def test_bundle_holds_aarch64_numpy_and_the_trainer_package(tmp_path: Path) -> None:
    # Given an empty output directory
    asset = tmp_path / "asset"

    # When
    bundle_lambda(asset, python_version=PYTHON_VERSION)

    # Then numpy is built for Lambda's arm64 CPython
    assert (
        asset / "numpy" / "_core" / f"_multiarray_umath.{CPYTHON}-aarch64-linux-gnu.so"
    ).is_file()
    (wheel,) = asset.glob("numpy-*.dist-info/WHEEL")
    tags = [
        line.split(": ")[1] for line in wheel.read_text().splitlines() if line.startswith("Tag:")
    ]
    assert tags and all(
        tag.startswith(f"{CP_TAG}-{CP_TAG}-manylinux") and tag.endswith("_aarch64") for tag in tags
    )
    # and every handler module ships, without bytecode or tests
    for logical in FUNCTIONS:
        module = handler_module(logical)
        assert (asset / (module.replace(".", "/") + ".py")).is_file(), module
    assert (asset / "pydantic_core").is_dir()
    assert (asset / "aws_lambda_powertools").is_dir()
    assert list(asset.rglob("__pycache__")) == []
    assert not (asset / "trainer" / "tests").exists()
    # and the stack's and the engine's half of the contract stays behind
    for relative in NOT_SHIPPED:
        assert not (asset / "trainer" / relative).exists(), relative
    # and it fits Lambda's limit for an unzipped package
    size = _size(asset)
    print(f"Lambda asset, unzipped: {size / 1024 / 1024:.1f} MB")
    assert size < LAMBDA_UNZIPPED_LIMIT_BYTES


def test_cdk_bundles_the_asset_locally(tmp_path: Path) -> None:
    # Given a function using the shared code asset, in an app that bundles (no Docker here)
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Bundled")
    lambda_.Function(
        stack,
        "Function",
        runtime=RUNTIME,
        architecture=lambda_.Architecture.ARM_64,
        handler=FUNCTIONS["Forward"].handler,
        code=lambda_code(RUNTIME),
    )

    # When
    app.synth()

    # Then the staged asset is the bundle
    (asset,) = [path for path in tmp_path.glob("asset.*") if path.is_dir()]
    assert (asset / "trainer" / "__init__.py").is_file()
    assert (asset / "numpy" / "__init__.py").is_file()


def test_the_bundle_pins_exactly_the_versions_the_tests_run() -> None:
    # Given the requirements the asset is bundled from
    pins = dict(
        line.split("==")
        for line in (LAMBDAS_DIR / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )

    # When
    tested = {name: metadata.version(name) for name in pins}

    # Then (re-pin, and check that cp314 aarch64 wheels exist: lambdas/requirements.txt)
    assert pins == tested
    assert {"numpy", "pydantic", "pydantic-core", "aws-lambda-powertools"} <= set(pins)


def _imports(path: Path) -> set[str]:
    """The ``trainer`` modules a source file imports (``from trainer.x import y`` gives both
    ``trainer.x`` and ``trainer.x.y``; only the existing ones count)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] == PACKAGE}


def _source(module: str) -> Path | None:
    base = LAMBDAS_DIR / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_no_handler_imports_what_is_not_shipped() -> None:
    # Given every handler module, and the packages on the way to them
    pending = [handler_module(logical) for logical in FUNCTIONS]
    reached: set[Path] = set()

    # When the imports are followed through the package
    while pending:
        module = pending.pop()
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):
            source = _source(".".join(parts[:depth]))
            if source is not None and source not in reached:
                reached.add(source)
                pending.extend(_imports(source))

    # Then none of them reaches a module the bundle leaves out
    not_shipped = {LAMBDAS_DIR / PACKAGE / relative for relative in NOT_SHIPPED}
    assert reached & not_shipped == set()
    assert LAMBDAS_DIR / PACKAGE / "contract" / "environment.py" in reached  # the walk works
