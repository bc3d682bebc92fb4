"""The home: a local engine's persistent store, one folder (``./.stepnet/``, or ``$STEPNET_HOME``).

What ``stepnet local`` keeps between processes — runs, their metrics, the model registry, tensor
bundles, uploaded datasets and exported models — behind the store interface the handlers use
(:class:`trainer.store.Store`: ``TensorAccess``, ``RunAccess``, ``ObjectAccess``), so they run
unchanged on it as on DynamoDB + S3::

    <home>/home.sqlite          runs table records, the tensor index, run owners (database)
    <home>/tensors/<key>.<sha>  tensor bundles, one file each (tensors)
    <home>/objects/<bucket>/…   objects of s3://<bucket>/… (objects)

It is the engine's, never the Lambdas': the sandboxes open it themselves
(:func:`store_for_function`, when the engine passes :data:`ENGINE_HOME_VARIABLE`), so their
storage calls never cross the engine's socket. Many processes may use one home at once.
docs/storage.md (the home) says what a killed process leaves.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from stepnet.engine.sandbox import HOME_VARIABLE as ENGINE_HOME_VARIABLE
from stepnet.home.database import Database
from stepnet.home.files import sweep_temporaries
from stepnet.home.objects import HomeObjects
from stepnet.home.runs import HomeRuns
from stepnet.home.tensors import HomeTensors
from trainer.store import DEFAULT_CACHE_BYTES, DEFAULT_SCRATCH_TTL_SECONDS, Store, keys

VERSION_ZERO: Final = "000000"  # how keys.weights_key spells version 0's number
HOME_VARIABLE: Final = "STEPNET_HOME"  # the user's: where the home is
DEFAULT_HOME: Final = Path(".stepnet")

__all__ = [
    "DEFAULT_HOME",
    "ENGINE_HOME_VARIABLE",
    "HOME_VARIABLE",
    "Home",
    "HomeObjects",
    "HomeRuns",
    "HomeTensors",
    "home_dir",
    "open_home",
    "store_for_function",
]


def home_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The home folder: ``$STEPNET_HOME`` if set, else ``./.stepnet`` (absolute)."""
    return Path(environ.get(HOME_VARIABLE) or DEFAULT_HOME).resolve()


class Home(Store):
    """A :class:`~trainer.store.Store` over a home folder (its parts typed as the home's)."""

    tensors: HomeTensors
    runs: HomeRuns
    objects: HomeObjects

    @property
    def path(self) -> Path:
        return self.objects.root.parent

    def weights_versions(self, run_id: str) -> list[int]:
        """Every weights version of the run written whole (``trainer.store.keys.weights_key``:
        an index row exists only for a bundle whose file is complete), ascending."""
        return self._versions(keys.weights_key(run_id, 0))

    def latest_weights_version(self, run_id: str) -> int | None:
        """The highest weights version of the run, or None before its first."""
        versions = self.weights_versions(run_id)
        return versions[-1] if versions else None

    def latest_complete_version(self, run_id: str) -> int | None:
        """The highest version whose weights *and* optimizer state (``keys.optimizer_key``) are
        both written — Update writes the weights first, so a kill between the two leaves the
        newest weights without their optimizer state: where a resume continues from."""
        complete = set(self.weights_versions(run_id)) & set(
            self._versions(keys.optimizer_key(run_id, 0))
        )
        return max(complete) if complete else None

    def _versions(self, first_key: str) -> list[int]:
        prefix = first_key.removesuffix(VERSION_ZERO)
        return sorted(int(key.removeprefix(prefix)) for key in self.tensors.versions(prefix))

    def sweep(self) -> int:
        """Remove expired scratch bundles and killed writers' temporary files; returns how many."""
        return self.tensors.sweep_expired() + sweep_temporaries(self.path)

    def delete_run(self, run_id: str) -> None:
        """Forget a run: its records and its tensors (its exported files stay until replaced)."""
        keys.dataset_key(run_id)  # a run id keys accept: no "/", not empty
        self.tensors.delete_prefix(f"{run_id}/")
        # and the bundle files killed writers left unindexed: every key of the run is under it
        shutil.rmtree(self.tensors.root / run_id, ignore_errors=True)
        self.runs.delete_run(run_id)


def open_home(
    home: Path,
    *,
    bucket: str = "",
    scratch_ttl_seconds: int = DEFAULT_SCRATCH_TTL_SECONDS,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    clock: Callable[[], float] = time.time,
) -> Home:
    """The store of the home at ``home`` (created on first use); ``bucket``: the name its
    objects' ``s3://`` URIs carry (the stack's bucket, as the functions' environment has it;
    a reader of URIs recorded already needs none)."""
    database = Database(Path(home))
    return Home(
        tensors=HomeTensors(
            database, scratch_ttl_seconds=scratch_ttl_seconds, cache_bytes=cache_bytes, clock=clock
        ),
        runs=HomeRuns(database, clock=clock),
        objects=HomeObjects(Path(home), bucket=bucket),
    )


def store_for_function(home: Path) -> Home:
    """A function's store on the home (a sandbox's, or a handler in the engine's threads): the
    bucket, scratch TTL and cache size its environment gives (``trainer.settings``)."""
    from trainer import settings

    environment = settings.environment()
    return open_home(
        home,
        bucket=environment.bucket,
        scratch_ttl_seconds=environment.scratch_ttl_hours * 3600,
        cache_bytes=settings.cache_bytes(),
    )
