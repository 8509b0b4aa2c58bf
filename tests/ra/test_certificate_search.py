"""Certificate search (eseal.ra.certificate_search) on a real database — SQLite, or
PostgreSQL with ESEAL_TEST_DATABASE=postgresql — filled with rows written directly: each
filter, the console's states with the clock moved, keyset pages that never repeat or skip a
row when sort keys tie, the bounded total, and a coded 422 naming each bad parameter."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pgkit
import pytest
from sqlalchemy import insert

from eseal.errors import InvalidInput
from eseal.ra import certificate_search as cs
from eseal.store import Database, open_database
from eseal.store.models import Certificate, Enterprise

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
RARE = "𠮷野家（福建）餐饮管理有限公司"
LOOKALIKE = "吉野家（福建）餐饮管理有限公司"
ENTERPRISES = [("91350100M000100Y43", RARE), ("91350100M000200Y40", LOOKALIKE),
               ("91110000802100433B", "北京ABC科技有限公司"), ("92440300MA5F000001", "abc贸易行")]


@pytest.fixture
def db(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    if pgkit.wanted():
        digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
        url = pgkit.server().create(f"search_{digest}")
    else:
        url = f"sqlite:///{tmp_path / 'search.db'}"
    database = open_database(url)
    yield database
    database.dispose()


@pytest.fixture(autouse=True)
def clock_at(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESEAL_ENV", "test")
    monkeypatch.setenv("ESEAL_NOW", NOW.isoformat())


def fill(db: Database, rows: list[dict[str, Any]]) -> None:
    """Enterprises A..D and ``rows`` (partial certificate rows; the rest defaulted)."""
    with db.write() as s:
        conn = s.connection()
        ids = {}
        for code, name in ENTERPRISES:
            ids[code] = conn.execute(insert(Enterprise.__table__).values(
                uscc=code, name=name, legal_rep="张三", status="active", created_at=NOW,
                updated_at=NOW).returning(Enterprise.__table__.c.id)).scalar_one()
        full = []
        for i, row in enumerate(rows):
            created = row.get("created_at", NOW - timedelta(days=100))
            full.append({
                "serial": row.get("serial", f"{0xa000 + i:x}"), "issuer_role": "issuing",
                "enterprise_id": ids[row.get("uscc", ENTERPRISES[0][0])],
                "profile": row.get("profile", "login"), "holder": row.get("holder", "王五"),
                "subject": "CN=x", "spki_sha256": f"{i:064x}", "key_id": f"{i:040x}",
                "not_before": created,
                "not_after": row.get("not_after", created + timedelta(days=365)),
                "status": row.get("status", "good"), "revoked_at": None,
                "revocation_reason": None, "invalidity_date": None, "status_version": 0,
                "key_certified_at": created, "renewed_from": None, "replaced_by": None,
                "token_label": None, "der": b"\x30\x00", "created_at": created})
        conn.execute(insert(Certificate.__table__), full)


def page(db: Database, q: cs.SearchQuery) -> cs.SearchPage:
    """``search_certificates`` without an Authority: these tests need only its database."""
    with db.read() as s:
        return cs.run_search(s, q)


def serials(db: Database, **kw: Any) -> list[str]:
    return [r["serial"] for r in page(db, cs.search_query(limit=200, **kw)).rows]


# --- each filter -----------------------------------------------------------------------------
def test_credit_code_matches_exactly_or_by_prefix_in_any_case(db: Database) -> None:
    fill(db, [{"uscc": code, "serial": f"{i + 1:x}"} for i, (code, _) in enumerate(ENTERPRISES)])
    assert serials(db, uscc="91350100M000100Y43") == ["1"]
    assert sorted(serials(db, uscc="91350100M")) == ["1", "2"]
    assert sorted(serials(db, uscc="91350100m")) == ["1", "2"]  # typed in lowercase
    assert sorted(serials(db, uscc="9")) == ["1", "2", "3", "4"]
    assert serials(db, uscc="91350100M000100Y4") == ["1"]
    assert serials(db, uscc="8") == []


@pytest.mark.parametrize("narrow_cap", [cs.NARROW_CAP, 0], ids=["keys-first", "subquery"])
def test_name_substring_matches_characters_outside_the_bmp_byte_exactly(
        db: Database, monkeypatch: pytest.MonkeyPatch, narrow_cap: int) -> None:
    monkeypatch.setattr(cs, "NARROW_CAP", narrow_cap)
    fill(db, [{"uscc": code, "serial": f"{i + 1:x}"} for i, (code, _) in enumerate(ENTERPRISES)])
    assert serials(db, name="𠮷") == ["1"]  # not 吉野家
    assert serials(db, name="吉") == ["2"]  # not 𠮷野家
    assert sorted(serials(db, name="野家（福建）")) == ["1", "2"]
    assert serials(db, name="ABC") == ["3"]  # case-sensitive: not "abc贸易行"
    assert serials(db, name="%") == [] and serials(db, name="_") == []  # no wildcards
    rows = page(db, cs.search_query(name="𠮷")).rows
    assert rows[0]["enterprise_name"] == RARE and rows[0]["enterprise"] == ENTERPRISES[0][0]


@pytest.mark.parametrize("narrow_cap", [cs.NARROW_CAP, 0], ids=["keys-first", "subquery"])
def test_holder_substring(db: Database, monkeypatch: pytest.MonkeyPatch,
                          narrow_cap: int) -> None:
    monkeypatch.setattr(cs, "NARROW_CAP", narrow_cap)
    fill(db, [{"holder": "王五", "serial": "1"}, {"holder": "王五一", "serial": "2"},
              {"holder": "李𠮷", "serial": "3"}, {"holder": "李吉", "serial": "4"}])
    assert sorted(serials(db, holder="王五")) == ["1", "2"]
    assert serials(db, holder="𠮷") == ["3"]
    assert serials(db, holder="赵") == []


def test_serial_prefix_in_lowercase_hex_accepts_uppercase_colons_and_0x(db: Database) -> None:
    fill(db, [{"serial": s} for s in ("ab12", "ab9f", "abf0", "ac00", "1ab")])
    assert sorted(serials(db, serial="ab")) == ["ab12", "ab9f", "abf0"]
    assert sorted(serials(db, serial="AB:9")) == ["ab9f"]
    assert serials(db, serial="0xabf") == ["abf0"]
    assert serials(db, serial="ab12") == ["ab12"]
    assert serials(db, serial="f") == []


def test_states_follow_the_clock(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    soon = NOW + timedelta(days=10)
    fill(db, [{"serial": "1", "not_after": soon}, {"serial": "2", "status": "hold",
                                                     "not_after": soon},
              {"serial": "3", "status": "revoked", "not_after": soon},
              {"serial": "4", "not_after": NOW - timedelta(days=1)},
              {"serial": "5", "status": "hold", "not_after": NOW - timedelta(days=1)},
              {"serial": "6", "status": "revoked", "not_after": NOW - timedelta(days=1)}])
    assert serials(db, status="good") == ["1"]
    assert serials(db, status="hold") == ["2"]
    assert sorted(serials(db, status="revoked")) == ["3", "6"]
    assert sorted(serials(db, status="expired")) == ["4", "5"]
    states = {r["serial"]: r["state"] for r in page(
        db, cs.search_query()).rows}
    assert states == {"1": "good", "2": "hold", "3": "revoked", "4": "expired", "5": "expired",
                      "6": "revoked"}
    monkeypatch.setenv("ESEAL_NOW", (NOW + timedelta(days=11)).isoformat())
    assert sorted(serials(db, status="expired")) == ["1", "2", "4", "5"]
    assert serials(db, status="good") == [] and serials(db, status="hold") == []


def test_profile(db: Database) -> None:
    fill(db, [{"serial": "1", "profile": "login"}, {"serial": "2", "profile": "seal"}])
    assert serials(db, profile="seal") == ["2"] and serials(db, profile="login") == ["1"]


def test_expiring_within_n_days_moves_with_the_clock(db: Database,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fill(db, [{"serial": "1", "not_after": NOW + timedelta(days=5)},
              {"serial": "2", "not_after": NOW + timedelta(days=29, hours=23)},
              {"serial": "3", "not_after": NOW + timedelta(days=31)},
              {"serial": "4", "not_after": NOW - timedelta(hours=1)}])
    assert serials(db, expiring_within=30) == ["1", "2"]  # soonest first by default
    assert serials(db, expiring_within=0) == []
    monkeypatch.setenv("ESEAL_NOW", (NOW + timedelta(days=6)).isoformat())
    assert serials(db, expiring_within=30) == ["2", "3"]  # 1 has expired, 3 came into range
    assert serials(db, expiring_within=30, sort="expiry_desc") == ["3", "2"]


def test_filters_combine(db: Database) -> None:
    fill(db, [{"serial": "1", "uscc": ENTERPRISES[0][0], "profile": "seal", "holder": "张三"},
              {"serial": "2", "uscc": ENTERPRISES[0][0], "profile": "login", "holder": "张三"},
              {"serial": "3", "uscc": ENTERPRISES[1][0], "profile": "seal", "holder": "张三"}])
    assert serials(db, name="𠮷", profile="seal", holder="张") == ["1"]


# --- paging ----------------------------------------------------------------------------------
@pytest.mark.parametrize("sort", list(cs.SORTS))
def test_keyset_pages_show_every_row_once_when_sort_keys_tie(db: Database, sort: str) -> None:
    """57 rows sharing three creation times and three expiry times, pages of 7."""
    times = [NOW - timedelta(days=d) for d in (10, 20, 30)]
    fill(db, [{"serial": f"{0x100 + i:x}", "created_at": times[i % 3],
               "not_after": NOW + timedelta(days=(i % 3) + 1)} for i in range(57)])
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        got = page(db, cs.search_query(sort=sort, limit=7, cursor=cursor))
        assert got.total == 57 and got.total_exact
        seen += [r["serial"] for r in got.rows]
        cursor = got.next_cursor
        if cursor is None:
            break
    assert len(seen) == 57 and len(set(seen)) == 57
    column, descending = cs.SORTS[sort]
    everything = page(db, cs.search_query(sort=sort, limit=200)).rows
    assert seen == [r["serial"] for r in everything]
    keys = [(r[column], r["serial"]) for r in everything]
    assert keys == sorted(keys, reverse=descending)


def test_a_new_row_does_not_shift_the_next_page(db: Database) -> None:
    fill(db, [{"serial": f"{0x100 + i:x}", "created_at": NOW - timedelta(days=i + 1)}
              for i in range(10)])
    first = page(db, cs.search_query(limit=4))
    with db.write() as s:  # a newer certificate arrives between the two pages
        s.connection().execute(insert(Certificate.__table__).values(
            serial="fff", issuer_role="issuing", enterprise_id=None, profile="login",
            holder="新", subject="CN=x", spki_sha256="f" * 64, key_id="f" * 40,
            not_before=NOW, not_after=NOW + timedelta(days=365), status="good",
            status_version=0, key_certified_at=NOW, der=b"\x30\x00", created_at=NOW))
    second = page(db, cs.search_query(
        limit=4, cursor=first.next_cursor))
    assert [r["serial"] for r in first.rows] == ["100", "101", "102", "103"]
    assert [r["serial"] for r in second.rows] == ["104", "105", "106", "107"]


def test_offset_paging_is_bounded_and_the_total_capped(db: Database,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fill(db, [{"serial": f"{0x100 + i:x}", "created_at": NOW - timedelta(days=i + 1)}
              for i in range(12)])
    deep = page(db, cs.search_query(limit=5, offset=10))
    assert [r["serial"] for r in deep.rows] == ["10a", "10b"] and deep.next_cursor is None
    monkeypatch.setattr(cs, "COUNT_CAP", 10)
    capped = page(db, cs.search_query(limit=5)).to_dict()
    assert capped["total_exact"] is False and capped["total_text"] == "more than 10"
    assert capped["total"] == 10
    exact = page(db, cs.search_query(serial="10a")).to_dict()
    assert exact["total"] == 1 and exact["total_exact"] is True


# --- bad input -------------------------------------------------------------------------------
BAD = [
    ({"serial": "xyz"}, "SERIAL_INVALID", "serial"),
    ({"serial": "ab-12"}, "SERIAL_INVALID", "serial"),
    ({"serial": "1" * 41}, "SERIAL_INVALID", "serial"),
    ({"uscc": "91350100I"}, "USCC_CHARACTER", "uscc"),
    ({"uscc": "9" * 19}, "USCC_CHARACTER", "uscc"),
    ({"status": "valid"}, "SEARCH_STATUS_UNKNOWN", "status"),
    ({"profile": "root"}, "SEARCH_PROFILE_UNKNOWN", "profile"),
    ({"sort": "serial"}, "SEARCH_SORT_UNKNOWN", "sort"),
    ({"expiring_within": -1}, "VALUE_OUT_OF_RANGE", "expiring_within"),
    ({"expiring_within": 3651}, "VALUE_OUT_OF_RANGE", "expiring_within"),
    ({"limit": 0}, "VALUE_OUT_OF_RANGE", "limit"),
    ({"limit": 201}, "VALUE_OUT_OF_RANGE", "limit"),
    ({"offset": 10_001}, "VALUE_OUT_OF_RANGE", "offset"),
    ({"cursor": "not-a-cursor"}, "SEARCH_CURSOR_INVALID", "cursor"),
    ({"cursor": cs.encode_cursor("newest", NOW, "zz")}, "SEARCH_CURSOR_INVALID", "cursor"),
    ({"cursor": cs.encode_cursor("newest", NOW, "ab"), "offset": 5}, "SEARCH_CURSOR_INVALID",
     "cursor"),
    ({"name": "x" * 201}, "SEARCH_TEXT_TOO_LONG", "name"),
    ({"holder": "x" * 201}, "SEARCH_TEXT_TOO_LONG", "holder"),
]


@pytest.mark.parametrize(("kw", "code", "field"), BAD,
                         ids=[f"{c}-{i}" for i, (_, c, _) in enumerate(BAD)])
def test_a_bad_parameter_is_refused_naming_it(kw: dict[str, Any], code: str,
                                              field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        cs.search_query(**kw)
    assert refused.value.code == code and refused.value.field == field
    assert refused.value.status == 422 and refused.value.message_zh


def test_a_cursor_from_another_order_is_refused() -> None:
    cursor = cs.encode_cursor("expiry", NOW, "ab")
    assert cs.search_query(sort="expiry", cursor=cursor).cursor == (NOW, "ab")
    with pytest.raises(InvalidInput) as refused:
        cs.search_query(sort="newest", cursor=cursor)
    assert refused.value.code == "SEARCH_CURSOR_INVALID"


def test_the_default_order_fits_the_question() -> None:
    assert cs.search_query().sort == "newest"
    assert cs.search_query(expiring_within=30).sort == "expiry"
    assert cs.search_query(status="expired").sort == "expiry_desc"
    assert list(itertools.islice(cs.SORTS, 1)) == ["newest"]
