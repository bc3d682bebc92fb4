"""The Lambda asset, bundled with pip and no Docker: aarch64 wheels for the runtime's Python."""

import ast
from importlib import metadata
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_

from infra.bundling import (
    INFERENCE,
    INFERENCE_FOR_TRAINER,
    NOT_SHIPPED,
    PACKAGE,
    bundle_inference,
    bundle_lambda,
    inference_asset_hash,
    inference_files,
    lambda_code,
)
from infra.functions import PYTHON_VERSION, RUNTIME
from infra.paths import LAMBDAS_DIR
from trainer.contract.functions import FUNCTIONS, functions_of, handler_module

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
    # and every handler module of the trainer ships, without bytecode or tests
    for logical in functions_of("trainer"):
        module = handler_module(logical)
        assert (asset / (module.replace(".", "/") + ".py")).is_file(), module
    # with the production pointer's spelling (inference.pointer) and nothing else of inference
    assert sorted(p.name for p in (asset / INFERENCE).iterdir()) == sorted(INFERENCE_FOR_TRAINER)
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


def test_the_inference_bundle_is_numpy_the_forward_pass_and_inference(tmp_path: Path) -> None:
    # Given an empty output directory
    asset = tmp_path / "inference-asset"

    # When
    bundle_inference(asset, python_version=PYTHON_VERSION)

    # Then numpy for arm64, the prediction handlers, trainer.nn, Powertools for their metrics,
    # and nothing needing pydantic
    assert (
        asset / "numpy" / "_core" / f"_multiarray_umath.{CPYTHON}-aarch64-linux-gnu.so"
    ).is_file()
    for logical in functions_of("inference"):
        assert (asset / (handler_module(logical).replace(".", "/") + ".py")).is_file()
    assert sorted(p.name for p in (asset / PACKAGE).iterdir()) == ["__init__.py", "nn"]
    assert not (asset / "pydantic").exists()
    assert (asset / "aws_lambda_powertools" / "metrics" / "__init__.py").is_file()
    assert list(asset.rglob("__pycache__")) == []
    size = _size(asset)
    print(f"inference asset, unzipped: {size / 1024 / 1024:.1f} MB")
    assert size < 60 * 1024 * 1024  # docs/inference.md's target


def test_the_inference_asset_hash_follows_what_it_ships(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the hash of the shipped files
    before = inference_asset_hash(PYTHON_VERSION)
    shipped = {target for target, _ in inference_files()}

    # When one shipped file changes (a copy of the tree, so the repository is untouched)
    copy = tmp_path / "lambdas"
    for target, source in inference_files():
        (copy / target).parent.mkdir(parents=True, exist_ok=True)
        (copy / target).write_bytes(source.read_bytes())
    monkeypatch.setattr("infra.bundling.LAMBDAS_DIR", copy)
    same = inference_asset_hash(PYTHON_VERSION)
    (copy / "inference" / "model.py").write_text("# changed\n", encoding="utf-8")
    changed = inference_asset_hash(PYTHON_VERSION)

    # Then the hash is a function of the shipped files alone
    assert "inference/handlers.py" in shipped and "trainer/nn/network.py" in shipped
    assert not any(t.startswith(("trainer/handlers", "trainer/store")) for t in shipped)
    assert same == before != changed


def _imports(path: Path, package: str = PACKAGE) -> set[str]:
    """The ``package`` modules a source file imports (``from trainer.x import y`` gives both
    ``trainer.x`` and ``trainer.x.y``; only the existing ones count)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in (PACKAGE, INFERENCE)}


def _source(module: str) -> Path | None:
    base = LAMBDAS_DIR / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _reached(modules: list[str]) -> set[Path]:
    """Every source file of trainer and inference the modules import, transitively."""
    pending = list(modules)
    reached: set[Path] = set()
    while pending:
        module = pending.pop()
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):
            source = _source(".".join(parts[:depth]))
            if source is not None and source not in reached:
                reached.add(source)
                pending.extend(_imports(source))
    return reached


def test_the_prediction_handlers_import_only_what_their_asset_ships() -> None:
    # Given the prediction functions' handler modules
    modules = [handler_module(logical) for logical in functions_of("inference")]

    # When
    reached = _reached(modules)

    # Then they reach the inference package and the forward pass, nothing else of trainer
    shipped = {source for _, source in inference_files()}
    assert reached <= shipped
    assert LAMBDAS_DIR / "trainer" / "nn" / "network.py" in reached  # the walk works


def test_no_handler_imports_what_is_not_shipped() -> None:
    # Given every handler module of the trainer, and the packages on the way to them
    modules = [handler_module(logical) for logical in functions_of("trainer")]

    # When the imports are followed through the packages
    reached = _reached(modules)

    # Then none of them reaches a module the bundle leaves out
    not_shipped = {LAMBDAS_DIR / PACKAGE / relative for relative in NOT_SHIPPED}
    assert reached & not_shipped == set()
    inference = {path for path in reached if path.is_relative_to(LAMBDAS_DIR / INFERENCE)}
    assert inference == {LAMBDAS_DIR / INFERENCE / name for name in INFERENCE_FOR_TRAINER}
    assert LAMBDAS_DIR / PACKAGE / "contract" / "environment.py" in reached  # the walk works
