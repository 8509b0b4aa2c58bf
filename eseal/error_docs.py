"""``docs/errors.md``, generated from the error registry (:mod:`eseal.error_codes`).

``python -m eseal.error_docs`` (``make docs``) rewrites the file; ``--check`` exits 1 when it
is out of date. A test compares the file with :func:`render`, so the page cannot drift from
the codes the service answers with.
"""

from __future__ import annotations

import sys
from pathlib import Path

from eseal.errors import KINDS, REGISTRY

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"

_HEAD = """\
# eseal error codes / 错误代码

Generated from `eseal/error_codes.py` by `make docs` (`python -m eseal.error_docs`); do not
edit by hand. Every answer of the HTTP service that is not 2xx is JSON
`{{code, message, message_zh, field}}`, and every failing `eseal` command prints one line
`error CODE [field]: English / 中文` and exits non-zero. The `message` of an answer is
specific to the case; the titles below are the generic meaning of each code. A code always
answers with the status listed here, wherever it is raised. A 500 (`INTERNAL_ERROR`) is a
bug; a failure of the CA's own token, configuration or database is a 503.

Not listed: the findings inside a verification report (`eseal verify`, `POST /verify`),
which are entries of a report, not refusals. `/ocsp` and `/tsa` answer their refusals in
their own protocols (an OCSP `malformedRequest`, a timestamp `badDataFormat` …); the
`OCSP_*` and `TSA_*` codes below are those refusals as the library raises them.

{count} codes.

| status | meaning | class to raise |
|---|---|---|
{kinds}
"""


def render() -> str:
    """The whole page, by status then code."""
    used = sorted({entry.status for entry in REGISTRY.values()})
    kinds = "\n".join(f"| {status} | {KINDS[status][1]} | `{KINDS[status][0]}` |"
                      for status in used)
    out = [_HEAD.format(count=len(REGISTRY), kinds=kinds)]
    for status in used:
        out.append(f"\n## {status} — {KINDS[status][1]}\n")
        out.append("| code | English | 中文 |")
        out.append("|---|---|---|")
        for entry in sorted((e for e in REGISTRY.values() if e.status == status),
                            key=lambda e: e.code):
            title = entry.title.replace("|", "\\|")
            title_zh = entry.title_zh.replace("|", "\\|")
            out.append(f"| `{entry.code}` | {title} | {title_zh} |")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            print(f"{DOC} is out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC} ({len(REGISTRY)} codes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
