"""A load that fails after some of a table's batches are in the store, for a reason that is
not the store's: the table is taken back whole, on every store. (Faults of one store, a
Neo4j server killed or a disk that is full, are in ``tests/test_faults.py``.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.exports import SMALL_EXPORT as SMALL
from helpers.stores import contents

from ringscope.errors import LoadError
from ringscope.graphs.store import GraphStore
from ringscope.loaders.pipeline import load_export


def _bomb_after_good_rows(path: Path) -> None:
    """accounts.parquet: three good accounts, then rows of one dictionary entry of
    1 MiB (decoded, 200 times the file's size before long): refused part-way."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 100_000
    bomb = pa.table(
        {
            "account_id": pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n, dtype=np.int32)), pa.array(["x" * (1 << 20)])
            ),
            "roles": pa.array(["buyer"] * n),
            "created_at": pa.array(["2024-01-01"] * n),
        }
    )
    good = pa.table(
        {
            "account_id": pa.DictionaryArray.from_arrays(
                pa.array([0, 1, 2], pa.int32()), pa.array(["n1", "n2", "n3"])
            ),
            "roles": ["buyer"] * 3,
            "created_at": ["2024-01-01"] * 3,
        }
    )
    with pq.ParquetWriter(path, bomb.schema, compression="zstd") as writer:
        writer.write_table(good)
        writer.write_table(bomb)


def test_a_table_failing_after_batches_were_written_is_taken_back(
    store: GraphStore, tmp_path: Path
) -> None:
    """Two failures that are not the store's, each after the table's first batches
    are in the store: a file refused part-way (a dictionary bomb in its second row
    group) and a rejects file that cannot be written (its folder is a file). Either
    way the table is taken back whole, on the embedded store and on Neo4j (graph
    included), and the tables loaded before stay."""
    load_export(store, SMALL, rejects_dir=tmp_path / "rejects")
    before = contents(store)

    refused = tmp_path / "refused"
    refused.mkdir()
    _bomb_after_good_rows(refused / "accounts.parquet")
    report = load_export(store, refused, rejects_dir=tmp_path / "r1", batch_rows=2)
    error = report.tables["accounts"].error
    assert error is not None and "refused as a likely decompression bomb" in error, error
    assert report.tables["accounts"].loaded == 0
    assert contents(store) == before

    unwritable = tmp_path / "unwritable"
    unwritable.mkdir()
    (unwritable / "accounts.csv").write_text(
        "account_id,roles,created_at\nm1,buyer,2024-01-01\nm2,buyer,2024-01-01\n"
        "m3,nobody,2024-01-01\nm4,buyer,2024-01-01\n"
    )
    (unwritable / "streams.csv").write_text(
        "stream_id,creator_id,started_at\nmst1,m1,2026-11-01T19:00:00Z\n"
    )
    (tmp_path / "r2").write_text("a file where the rejects folder should be\n")
    with pytest.raises(LoadError) as failed:
        load_export(store, unwritable, rejects_dir=tmp_path / "r2", batch_rows=2)
    message = str(failed.value)
    assert message.startswith("loading accounts from"), message
    assert "cannot write the rejects file" in message and "taken back" in message, message
    assert contents(store) == before
