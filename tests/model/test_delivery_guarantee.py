"""The delivery guarantee under concurrency, checked against a model (bench/delivery_model.py).

Two servers, concurrent GraphQL and SQL writers, clients that drop and catch up (one of them the
feed client package, client/, in Node); about 90 s.
The seed changes every run and is printed (and named in every violation); replay one with
DELIVERY_MODEL_SEED=<seed>. The longer run: `python -m bench.delivery_model --seconds 600`.
"""

from __future__ import annotations

import gc
from dataclasses import replace
from pathlib import Path

import pytest

from bench.delivery_model import ModelConfig, default_seed, run_model
from tests.client.build import build_client

# Sized for a two-core CI machine: the run itself, checkpoints included, then the final check.
CI_RUN = ModelConfig(seconds=70.0, writers=6, clients=6, seed=0)


@pytest.fixture(scope="module", autouse=True)
def built_client() -> None:
    """One of the model's clients is the feed client package: built from its current sources."""
    build_client()


@pytest.mark.timeout(300)
async def test_every_client_gets_every_committed_notification_once_and_ends_equal_to_the_table(
    database_url: str, tmp_path: Path
) -> None:
    seed = default_seed()
    print(f"delivery model seed: {seed} (DELIVERY_MODEL_SEED={seed} replays it)")
    report = await run_model(replace(CI_RUN, seed=seed), database_url, tmp_path)
    # Anything the run left open (an aiohttp session of a Socket.IO client) warns here, in this
    # test, not in whichever later test the garbage collector happens to run in.
    gc.collect()
    if not report.ok:
        pytest.fail(report.summary(), pytrace=False)
    print(report.summary())
