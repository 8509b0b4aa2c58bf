"""Which optional-content groups every viewer hides on a sealed page.

Optional content (layers) is where shadow documents keep what they reveal later, so the
page outline (:mod:`eseal.signing.page_ink`) must count as ink everything that *some* viewer
shows. Viewers agree only on the plain case; everything else they decide differently
(poppler and pdf.js ignore a group that /OCGs does not list and show its content, auto
states (/AS) switch groups by viewing conditions, membership dictionaries (/OCMD) combine
groups by /P policies or /VE expressions, /Intent makes groups count or not). We chose
this narrow answer over "all optional content is ink" because a document may legitimately
carry a layer that is switched off (our own test filings do) and a later seal over the free
space it would occupy is honest; every case beyond the narrow one fails closed, as ink:

* the group is referenced directly (an indirect /Type /OCG dictionary, not an /OCMD),
  listed in /OCProperties /OCGs, with no /Intent other than /View;
* the default configuration /D has no /AS, no /Intent other than /View, a /BaseState of
  /ON (the default) or /OFF, and turns the group off: it is in /OFF and not in /ON (base
  state ON), or not in /ON (base state OFF).
"""

from __future__ import annotations

from typing import Any

from pyhanko.pdf_utils import generic

__all__ = ["hidden_groups", "ref_key"]


def ref_key(value: Any) -> tuple[int, int] | None:
    """(object number, generation) of a reference, or None for a direct value."""
    if isinstance(value, generic.IndirectObject):
        return value.idnum, value.generation
    return None


def _refs(array: Any) -> set[tuple[int, int]]:
    if not isinstance(array, list):
        return set()
    return {key for key in (ref_key(array.raw_get(i)) for i in range(len(array))) if key}


def _view_only(intent: Any) -> bool:
    if intent is None or intent == "/View":
        return True
    return isinstance(intent, list) and all(i == "/View" for i in intent)


def _get(mapping: Any, key: str) -> Any:
    try:
        return mapping[key]
    except (KeyError, TypeError):
        return None


def hidden_groups(root: Any) -> set[tuple[int, int]]:
    """References of the optional-content groups that every viewer hides by default."""
    props = _get(root, "/OCProperties")
    config = _get(props, "/D")
    if not isinstance(props, dict) or not isinstance(config, dict):
        return set()
    if "/AS" in config or not _view_only(_get(config, "/Intent")):
        return set()
    listed: dict[tuple[int, int], Any] = {}
    groups = props.raw_get("/OCGs") if "/OCGs" in props else None
    groups = groups.get_object() if isinstance(groups, generic.IndirectObject) else groups
    for i in range(len(groups) if isinstance(groups, list) else 0):
        key = ref_key(groups.raw_get(i))
        if key is not None:
            listed[key] = groups[i]
    on = _refs(_get(config, "/ON"))
    off = _refs(_get(config, "/OFF"))
    base = _get(config, "/BaseState") or "/ON"
    if base == "/ON":
        hidden = (off & listed.keys()) - on
    elif base == "/OFF":
        hidden = listed.keys() - on
    else:
        return set()
    return {key for key in hidden if isinstance(listed[key], dict)
            and _get(listed[key], "/Type") == "/OCG" and _view_only(_get(listed[key], "/Intent"))}
