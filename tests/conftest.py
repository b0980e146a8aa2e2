from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(os.environ.get("DUBBER_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch) -> None:
    """Adapted models go to a test folder, never to the user's cache."""
    monkeypatch.setenv("DUB_CACHE", str(tmp_path_factory.getbasetemp() / "dub-cache"))


@pytest.fixture
def one_torch_thread():
    """torch set to one thread, as a dub sets it on two cores, for this test alone."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_manifest() -> list[dict]:
    manifest = SHARED_DATA / "manifest.csv"
    if not manifest.exists():
        pytest.skip(f"shared talking-face data not found at {SHARED_DATA}")
    with manifest.open() as f:
        return list(csv.DictReader(f))


def shared_path(row: dict) -> Path:
    return SHARED_DATA / row["path"]


def prepare_shared_rows(rows: list[dict], folder: Path, split: str = "dev"):
    """A prepared cache (real tracker) of these shared-manifest rows, under ``split``."""
    import csv

    from dubber.data import PrepCache, prepare_dataset
    from dubber.data.sources import read_manifest

    manifest = folder / "m.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "split", "speaker"])
        w.writeheader()
        for r in rows:
            w.writerow({"path": str(shared_path(r)), "split": split, "speaker": r["speaker"]})
    summary = prepare_dataset(read_manifest(manifest), folder / "cache", jobs=1)
    assert summary.ok == len(rows)
    return PrepCache(folder / "cache")
