"""Every file format gives the same normalised frame; timestamp forms agree."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringscope.contract import ENGAGEMENT_KINDS
from ringscope.errors import InputError
from ringscope.loaders import read
from ringscope.loaders.pipeline import read_table

SMALL = Path(__file__).parent / "data" / "small-export"


def write_all_formats(folder: Path, frame: pd.DataFrame, table: str) -> list[Path]:
    """Write ``frame`` (all values as text or None) as csv, csv.gz, jsonl and parquet."""
    paths = []
    for fmt in ("csv", "csv.gz", "jsonl", "parquet"):
        sub = folder / fmt.replace(".", "_")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"{table}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        elif fmt == "csv.gz":
            path.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
        elif fmt == "jsonl":
            records = [
                {k: None if pd.isna(v) else v for k, v in r.items()}
                for r in frame.to_dict(orient="records")
            ]
            path.write_text("".join(json.dumps(r) + "\n" for r in records))
        else:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        paths.append(path)
    return paths


def test_all_formats_give_identical_frames(tmp_path: Path) -> None:
    for name in ("accounts", "streams", "engagements", "identifiers"):
        source = next(SMALL.glob(f"{name}.*"))
        reference = read_table(source).frame
        raw = (
            pd.read_csv(source, dtype=str, keep_default_na=False) if ".csv" in source.name else None
        )
        if raw is None:
            raw = pd.read_json(source, lines=True, dtype=False).astype(object)
            raw = raw.map(lambda v: None if pd.isna(v) else str(v))
        for path in write_all_formats(tmp_path / name, raw, name):
            result = read_table(path)
            assert result.problems() == [], path
            pd.testing.assert_frame_equal(result.frame, reference, check_dtype=True)


def test_typed_parquet_matches_text_csv(tmp_path: Path) -> None:
    typed = read_table(SMALL / "orders.parquet").frame
    text = typed.astype(object).map(
        lambda v: "" if pd.isna(v) else (v.isoformat() if isinstance(v, pd.Timestamp) else str(v))
    )
    path = tmp_path / "orders.csv"
    text.to_csv(path, index=False)
    pd.testing.assert_frame_equal(read_table(path).frame, typed)


def test_timestamp_forms_give_the_same_instant(tmp_path: Path) -> None:
    forms = [
        "2026-11-01T19:00:00Z",
        "2026-11-01T19:00:00+00:00",
        "2026-11-02T03:00:00+08:00",
        "2026-11-01T12:00:00-0700",
        "2026-11-01T19:00:00",
        "2026-11-01 19:00:00",
        "2026-11-01T19:00:00.000000Z",
        "1793559600",
        "1793559600.0",
        " 1793559600 ",
    ]
    path = tmp_path / "accounts.csv"
    path.write_text(
        "account_id,roles,created_at\n" + "".join(f"a{i},buyer,{f}\n" for i, f in enumerate(forms))
    )
    frame = read_table(path).frame
    assert len(frame) == len(forms)
    assert set(frame["created_at"]) == {pd.Timestamp("2026-11-01T19:00:00Z")}
    assert str(frame["created_at"].dtype) == "datetime64[us, UTC]"


def test_unix_seconds_keep_microseconds(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text("account_id,roles,created_at\na,buyer,1793559600.123456\nb,buyer,2026-11-01\n")
    frame = read_table(path).frame
    assert frame["created_at"][0] == pd.Timestamp("2026-11-01T19:00:00.123456Z")
    assert frame["created_at"][1] == pd.Timestamp("2026-11-01T00:00:00Z")


_ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=12,
)
_rows = st.lists(
    st.tuples(
        _ids,
        _ids,
        st.sampled_from(ENGAGEMENT_KINDS),
        st.integers(946_684_800, 1_790_000_000),
        st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False).map(lambda x: round(x, 2))),
    ),
    min_size=1,
    max_size=30,
    unique_by=lambda r: (r[0], r[1], r[2], r[3]),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_rows)
def test_round_trip_of_valid_rows(tmp_path_factory: object, rows: list[tuple]) -> None:
    import tempfile

    frame = pd.DataFrame(
        {
            "account_id": [r[0] for r in rows],
            "stream_id": [r[1] for r in rows],
            "kind": [r[2] for r in rows],
            "ts": [pd.Timestamp(r[3], unit="s", tz="UTC").isoformat() for r in rows],
            "amount": [None if r[4] is None else repr(r[4]) for r in rows],
        }
    )
    expected = pd.DataFrame(
        {
            "account_id": pd.Series([r[0] for r in rows], dtype="str"),
            "stream_id": pd.Series([r[1] for r in rows], dtype="str"),
            "kind": pd.Series([r[2] for r in rows], dtype="str"),
            "ts": pd.to_datetime([r[3] for r in rows], unit="s", utc=True).as_unit("us"),
            "amount": pd.Series([float("nan") if r[4] is None else r[4] for r in rows]),
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        for path in write_all_formats(Path(folder), frame, "engagements"):
            result = read_table(path)
            assert result.problems() == [], path
            pd.testing.assert_frame_equal(result.frame, expected, check_index_type=False)


def test_dictionary_encoded_parquet_gives_the_plain_frame(tmp_path: Path) -> None:
    """The same table written plain, dictionary-encoded (pyarrow's default for text)
    and as pandas categoricals (stored with a dictionary type) reads the same."""
    for name in ("accounts", "streams", "labels"):
        source = SMALL / f"{name}.csv"
        reference = read_table(source).frame
        raw = pd.read_csv(source, dtype=str, keep_default_na=False)
        table = pa.Table.from_pandas(raw, preserve_index=False)
        plain, encoded, categorical = (tmp_path / n / f"{name}.parquet" for n in ("p", "d", "c"))
        for path in (plain, encoded, categorical):
            path.parent.mkdir(exist_ok=True)
        pq.write_table(table, plain, use_dictionary=False)
        pq.write_table(table, encoded, use_dictionary=True)
        raw.astype("category").to_parquet(categorical, index=False)
        assert pa.types.is_dictionary(pq.ParquetFile(categorical).schema_arrow[0].type)
        for path in (plain, encoded, categorical):
            result = read_table(path)
            assert result.problems() == [], path
            pd.testing.assert_frame_equal(result.frame, reference, check_dtype=True)


def test_a_parquet_page_over_the_cap_is_refused_from_its_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page larger than the cap is refused from its page header, before it is read
    (the cap lowered to 1 MiB here so that the file can stay small)."""
    monkeypatch.setattr(read, "MAX_FIELD_BYTES", 1 << 20)
    path = tmp_path / "accounts.parquet"
    noise = np.random.default_rng(1).bytes(3 << 19).hex()  # 3 MiB of text, incompressible
    pq.write_table(
        pa.table({"account_id": ["a1", noise], "roles": ["buyer"] * 2, "created_at": [1] * 2}),
        path,
        use_dictionary=False,
    )
    with pytest.raises(InputError, match=r"a page decompresses to [\d,]+ bytes, more than 1 MiB"):
        list(read.iter_raw_chunks(path, "accounts"))


def test_rows_of_long_values_come_in_chunks_of_bounded_bytes(tmp_path: Path) -> None:
    """Rows of long values are split over several chunks of at most
    :data:`~ringscope.loaders.read.BATCH_BYTES` (plus one row), in every format."""
    rows = 12  # 36 MiB of values that do not compress: more than one chunk's worth
    rng = np.random.default_rng(2)
    titles = [rng.bytes(3 << 19).hex() for _ in range(rows)]
    frame = pd.DataFrame(
        {
            "stream_id": [f"st{i}" for i in range(rows)],
            "creator_id": ["c1"] * rows,
            "started_at": ["2026-11-01T19:00:00Z"] * rows,
            "title": titles,
        }
    )
    for path in write_all_formats(tmp_path, frame, "streams"):
        try:
            chunks = list(read.iter_raw_chunks(path, "streams"))
        except read.ExactReadNeeded:  # CSV values longer than the header's read block
            chunks = list(read.iter_raw_chunks(path, "streams", exact=True))
        assert sum(c.data.num_rows for c in chunks) == rows, path
        assert len(chunks) > 1, path
        assert all(c.data.nbytes <= read.BATCH_BYTES + len(titles[0]) + 1024 for c in chunks)
        numbers = np.concatenate([c.rows for c in chunks])
        assert numbers.tolist() == list(range(1, rows + 1)), path


def test_json_nan_in_text_columns_is_missing_never_the_text_nan(tmp_path: Path) -> None:
    path = tmp_path / "streams.jsonl"
    path.write_text(
        '{"stream_id": "st1", "creator_id": "c1", "started_at": 1762000000, "title": NaN}\n'
        '{"stream_id": "st2", "creator_id": NaN, "started_at": 1762000000, "title": "nan"}\n'
        '{"stream_id": "st3", "creator_id": "c1", "started_at": 1762000000, "title": Infinity}\n'
        '{"stream_id": "st4", "creator_id": "c1", "started_at": NaN}\n'
    )
    result = read_table(path)
    assert result.frame["stream_id"].tolist() == ["st1"]
    assert pd.isna(result.frame["title"].iloc[0])
    assert [(p.row, p.column, p.reason) for p in result.problems()] == [
        (2, "creator_id", "missing value (NaN)"),
        (3, "title", "expected text, found Infinity"),
        (4, "started_at", "not a timestamp: 'nan' (expected ISO 8601 or Unix seconds)"),
    ]
