"""Label naming rules: a file or folder name becomes a human label (the seed's rules).

``LOCH-JP001_dark_magician_scr.jpg`` -> label ``Dark Magician``, rarity ``scr``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .config import NamingRules

SET_CODE_RE = re.compile(r"^[A-Za-z0-9]{2,6}-[A-Za-z]{0,3}\d{3,4}[A-Za-z]?_")
"""A trading-card set code at the start of a stem, e.g. ``LOCH-JP001_`` or ``SDK-001_``
(three or four digits, so a name like ``R2-D2_droid`` is left alone)."""

HIERARCHY_SEP = " > "


@dataclass(frozen=True)
class ParsedName:
    """A label and the rarity split off its name, if any."""

    label: str
    rarity: str | None = None


def _title(words: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in words.split(" "))


def label_from_name(stem: str, rules: NamingRules, *, is_file: bool = True) -> ParsedName:
    """Apply the naming rules to a file stem (or a folder name).

    Set codes are stripped only from file stems; folder names are labels already chosen
    by a person, so only the cosmetic rules (underscores, title case) apply to them.
    """
    name = stem.strip()
    rarity = None
    if is_file:
        if rules.strip_set_code:
            name = SET_CODE_RE.sub("", name, count=1)
        head, sep, tail = name.rpartition("_")
        if sep and head and tail in rules.rarity_suffixes:
            name, rarity = head, tail
    name = re.sub(r"[_\s]+", " ", name).strip()
    if rules.title_case:
        name = _title(name)
    if not name:
        name = stem.strip() or "Unnamed"
    return ParsedName(label=name, rarity=rarity)


def with_prefix(label: str, prefix: str | None) -> str:
    """Join a hierarchical prefix and a label: ``Cards > Yu-Gi-Oh`` + ``Dark Magician``."""
    if not prefix:
        return label
    parts = [p.strip() for p in prefix.split(">") if p.strip()]
    return HIERARCHY_SEP.join([*parts, label])
