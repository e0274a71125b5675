"""The `storage` fixture both storage test modules run on: local disk, S3 over HTTP
(moto), and SeaweedFS (a real S3 server, started once per run by conftest)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from config.settings import MiB, Settings
from server.storage import Storage, open_storage
from tests.s3_server import moto_s3_server, s3_settings

PART = 5 * MiB  # the S3 minimum, and what the settings validation allows


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3", pytest.param("seaweedfs", marks=pytest.mark.seaweedfs)])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "local":
        settings = Settings(data_dir=tmp_path, storage="local")
    else:
        # Looked up lazily so `-k local` runs without starting moto or SeaweedFS.
        endpoint = request.getfixturevalue(f"{request.param}_endpoint")
        settings = Settings(data_dir=tmp_path, s3_part_size=PART, **s3_settings(endpoint))
    store = await open_storage(settings)
    try:
        yield store
    finally:
        await store.close()
