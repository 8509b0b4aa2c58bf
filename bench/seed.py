"""Seed an eseal database with many certificates for the console benchmarks
(``seed_certificates(home_or_db, n=100_000)``).

What is real and what is not:

* **Enterprises** (one per eight certificates): credit codes with a correct GB 32100 check
  character, Chinese names built from parts, about 5 % with characters outside the BMP
  (𠮷, 𡈼, 𨚕 …) and some with their BMP look-alikes (吉), so a byte-exact name search has
  something to get wrong.
* **Certificate DER**: a pool of ``pool`` certificates (default 1,000) is really built and
  signed — by the home's issuing CA key on its token when a home is given (the enterprise's
  name and credit code in the subject, a login or seal key usage), by a throwaway software
  CA key when only a database URL is. Each of the first ``pool`` rows carries its own
  certificate (serial, subject, dates and key match the row). **Every later row reuses a
  pool certificate's DER**: its serial, dates and subject columns are its own, the DER's are
  not. Signing 100,000 certificates would take minutes (~3,000/s with a software key,
  before the token), and nothing the search reads parses the DER; a PEM download of a later
  row, or OCSP for it, answers for the pool certificate instead.
* **Rows**: random 128-bit serials, creation spread over the past two years, one-year
  validity (so about half are expired), 90 % good, 3 % on hold, 7 % revoked with an RFC 5280
  reason, holders' Chinese names, token labels, ``spki_sha256``/``key_id`` random per row.
* **Not written**: audit events, freeze windows, enterprise name history, accounts. The
  seeder writes straight to the tables (bulk inserts in one transaction), not through the
  audited paths, so ``eseal audit verify`` still passes and says nothing about these rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

CHUNK = 5_000
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
            "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛")
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬建国建华文"
CITIES = ["北京", "上海", "福建", "广州", "深圳", "杭州", "成都", "武汉", "西安", "南京",
          "厦门", "福州", "长沙", "郑州", "济南", "青岛", "昆明", "贵阳", "南宁", "合肥"]
WORDS = ["华信", "恒通", "远大", "新峰", "瑞丰", "金桥", "天成", "海纳", "宏图", "联创",
         "博远", "嘉禾", "正泰", "永盛", "鼎新", "中和", "兴业", "盛世", "同益", "东方"]
RARE = ["𠮷野家", "𡈼山", "𨚕阳", "𠀋", "𪚥龙", "䶮华"]  # outside the BMP, and one in ext. A
LOOKALIKE = ["吉野家", "吉祥"]  # what a careless search would confuse with 𠮷
TRADES = ["餐饮管理", "科技", "贸易", "建筑工程", "物流", "医药", "文化传媒", "电子", "食品",
          "咨询服务"]
FORMS = ["有限公司", "股份有限公司", "有限责任公司"]
REASONS = ["keyCompromise", "superseded", "affiliationChanged", "cessationOfOperation"]
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def uscc(rng: random.Random) -> str:
    from eseal.pki.identity import uscc_check_character

    body = "91" + f"{rng.randrange(110000, 660000):06d}" + "".join(
        rng.choice(USCC_ALPHABET) for _ in range(9))
    return body + uscc_check_character(body)


def enterprise_name(rng: random.Random, i: int) -> str:
    roll = rng.random()
    city = rng.choice(CITIES)
    if roll < 0.05:
        head = rng.choice(RARE)
    elif roll < 0.08:
        head = rng.choice(LOOKALIKE)
    else:
        head = rng.choice(WORDS)
    return f"{head}（{city}）{rng.choice(TRADES)}{FORMS[i % len(FORMS)]}"


def person(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def _signer(home_or_db: Any) -> tuple[str, Any, Any, Any]:
    """(database URL, issuing certificate, issuing key, authority or None)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    if isinstance(home_or_db, str) and "://" in home_or_db:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seed issuing CA (software)")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(1).not_valid_before(now)
                .not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
                .sign(key, hashes.SHA256()))
        return home_or_db, cert, key, None
    from eseal.ca.authority import Authority
    from eseal.settings import load_settings

    settings = load_settings(Path(home_or_db))
    auth = Authority.open(settings)
    return settings.database, auth.certificate("issuing"), auth.key("issuing"), auth


def _pool(n: int, issuer: Any, key: Any, enterprises: list[tuple[str, str]],
          rng: random.Random, now: dt.datetime) -> list[dict[str, Any]]:
    """``n`` really signed certificates (subject from an enterprise, a login or seal key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    holder_keys = [ec.generate_private_key(ec.SECP256R1()).public_key() for _ in range(16)]
    out = []
    for i in range(n):
        code, name = enterprises[i % len(enterprises)]
        profile = "seal" if i % 3 == 0 else "login"
        holder = person(rng)
        created = now - dt.timedelta(seconds=rng.randrange(0, 730 * 86400))
        created = created.replace(microsecond=0)
        serial = x509.random_serial_number()
        public = holder_keys[i % len(holder_keys)]
        subject = x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(x509.ObjectIdentifier("2.5.4.97"), f"NTRCN-{code}"),
            x509.NameAttribute(NameOID.COMMON_NAME, name if profile == "seal" else holder)])
        usage = x509.KeyUsage(digital_signature=True, content_commitment=profile == "seal",
                              key_encipherment=False, data_encipherment=False,
                              key_agreement=False, key_cert_sign=False, crl_sign=False,
                              encipher_only=False, decipher_only=False)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.subject)
                .public_key(public).serial_number(serial).not_valid_before(created)
                .not_valid_after(created + dt.timedelta(days=365))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                .add_extension(usage, True)
                .sign(key, hashes.SHA256()))
        spki = public.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        out.append({"serial": format(serial, "x"), "der": cert.public_bytes(
            serialization.Encoding.DER), "created": created, "profile": profile,
            "holder": holder, "subject": cert.subject.rfc4514_string(),
            "spki": hashlib.sha256(spki).hexdigest(), "enterprise": i % len(enterprises)})
    return out


def seed_certificates(home_or_db: str | Path, n: int = 100_000, *, pool: int = 1_000,
                      seed: int = 12, now: dt.datetime | None = None) -> dict[str, Any]:
    """Write ``n`` certificates (and ``n // 8`` enterprises) in bulk; returns what was written
    and how long it took. ``home_or_db``: an eseal home (its issuing key signs the pool) or
    a database URL (a throwaway software CA signs it)."""
    from eseal.store import open_database
    from eseal.store.models import Certificate, Enterprise

    started = time.perf_counter()
    rng = random.Random(seed)
    now = now or dt.datetime.now(dt.UTC)
    url, issuer, key, auth = _signer(home_or_db)
    db = open_database(url)
    n_ent = max(1, n // 8)
    codes: set[str] = set()
    ent_rows = []
    for i in range(n_ent):
        code = uscc(rng)
        while code in codes:
            code = uscc(rng)
        codes.add(code)
        ent_rows.append({"uscc": code, "name": enterprise_name(rng, i),
                         "legal_rep": person(rng), "contact_email": None, "status": "active",
                         "created_at": now - dt.timedelta(days=800), "updated_at": now})
    signed_at = time.perf_counter()
    pool_rows = _pool(min(pool, n), issuer, key, [(e["uscc"], e["name"]) for e in ent_rows],
                      rng, now)
    signing = time.perf_counter() - signed_at
    if auth is not None:
        auth.close(checkpoint=False)
    certs = Certificate.__table__
    with db.write() as s:
        conn = s.connection()
        for i in range(0, n_ent, CHUNK):
            conn.execute(insert(Enterprise.__table__), ent_rows[i:i + CHUNK])
        ent_ids = dict(conn.execute(select(Enterprise.__table__.c.uscc,
                                           Enterprise.__table__.c.id)).all())
        batch: list[dict[str, Any]] = []
        for i in range(n):
            p = pool_rows[i % len(pool_rows)]
            if i < len(pool_rows):
                serial, created, profile, holder, subject, ent_index = (
                    p["serial"], p["created"], p["profile"], p["holder"], p["subject"],
                    p["enterprise"])
                spki = p["spki"]
            else:
                serial = format(rng.getrandbits(128) | 1 << 120, "x")
                created = (now - dt.timedelta(seconds=rng.randrange(0, 730 * 86400))
                           ).replace(microsecond=0)
                ent_index = rng.randrange(n_ent)
                profile = "seal" if rng.random() < 0.3 else "login"
                holder = person(rng)
                ent = ent_rows[ent_index]
                subject = (f"CN={ent['name'] if profile == 'seal' else holder},"
                           f"2.5.4.97=NTRCN-{ent['uscc']},O={ent['name']},C=CN")
                spki = f"{rng.getrandbits(256):064x}"
            roll = rng.random()
            status = "hold" if roll < 0.03 else "revoked" if roll < 0.10 else "good"
            revoked_at = (created + dt.timedelta(days=rng.randrange(1, 300))
                          if status != "good" else None)
            batch.append({
                "serial": serial, "issuer_role": "issuing",
                "enterprise_id": ent_ids[ent_rows[ent_index]["uscc"]], "profile": profile,
                "holder": holder, "subject": subject, "spki_sha256": spki,
                "key_id": f"{rng.getrandbits(160):040x}", "not_before": created,
                "not_after": created + dt.timedelta(days=365), "status": status,
                "revoked_at": revoked_at,
                "revocation_reason": (rng.choice(REASONS) if status == "revoked"
                                      else "certificateHold" if status == "hold" else None),
                "invalidity_date": None, "status_version": 0, "key_certified_at": created,
                "renewed_from": None, "replaced_by": None, "token_label": f"seed-{i}",
                "der": p["der"], "created_at": created})
            if len(batch) >= CHUNK:
                conn.execute(insert(certs), batch)
                batch = []
        if batch:
            conn.execute(insert(certs), batch)
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE certificates")
            conn.exec_driver_sql("ANALYZE enterprises")
            conn.commit()
    else:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    return {"certificates": n, "enterprises": n_ent, "pool_signed": len(pool_rows),
            "signing_seconds": round(signing, 2),
            "seconds": round(time.perf_counter() - started, 2), "database": db.engine.dialect.name}
