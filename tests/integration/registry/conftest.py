"""Every test here that uses only a store runs on each implementation (``each_store``)."""

import pytest

from tests.integration.conftest import each_store


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    each_store(metafunc)
