"""Label naming rules: a file or folder name becomes a human label (the seed's rules).

``LOCH-JP001_dark_magician_scr.jpg`` -> label ``Dark Magician``, rarity ``scr``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from server.engine.errors import IdentifyError
from server.engine.project.config import NamingRules

SET_CODE_RE = re.compile(r"^[A-Za-z0-9]{2,6}-[A-Za-z]{0,3}\d{3,4}[A-Za-z]?_")
"""A trading-card set code at the start of a stem, e.g. ``LOCH-JP001_`` or ``SDK-001_``
(three or four digits, so a name like ``R2-D2_droid`` is left alone)."""

HIERARCHY_SEP = " > "

MAX_LABEL_CHARS = 200
"""Longest label accepted from a person."""
JOINERS = frozenset({"\u200c", "\u200d"})
"""Zero-width (non-)joiners: format characters that some scripts and emoji sequences
need between two visible characters; every other format character is refused."""


@dataclass(frozen=True)
class ParsedName:
    """A label and the rarity split off its name, if any."""

    label: str
    rarity: str | None = None


SMALL_WORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "as",
        "at",
        "but",
        "by",
        "de",
        "for",
        "in",
        "nor",
        "of",
        "on",
        "or",
        "the",
        "to",
        "vs",
        "with",
    }
)
"""Words title case leaves as written unless first or last (``Ace of Clubs``)."""


def _title(words: str) -> str:
    parts = words.split(" ")
    return " ".join(
        w if w in SMALL_WORDS and 0 < i < len(parts) - 1 else w[:1].upper() + w[1:]
        for i, w in enumerate(parts)
    )


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


def clean_label(label: object) -> str:
    """A label given by a person (API, review, import), normalised and checked.

    The rule: Unicode NFC, runs of white space as one space, at most
    ``MAX_LABEL_CHARS`` characters; no control characters, no lone surrogates or U+FFFD
    (what invalid UTF-8 becomes), no
    format characters (bidi overrides and isolates such as U+202E, zero-width spaces,
    BOMs) other than a joiner between two visible characters; at least one visible
    character; and nothing that reads as a path (``.`` or ``..`` as a ``/``-separated
    part, a leading ``/`` or ``~``, a backslash) -- ``AC/DC`` is a label, ``../x`` is not.

    Raises:
        IdentifyError: the label breaks the rule (the message says how).
    """
    if not isinstance(label, str):
        raise IdentifyError("a label must be a string")
    if any(unicodedata.category(ch) == "Cs" for ch in label):
        raise IdentifyError("a label must be valid Unicode (it holds a lone surrogate)")
    if "\ufffd" in label:
        raise IdentifyError(
            "a label cannot hold U+FFFD, the mark of text that was not "
            "valid UTF-8: send the label as UTF-8"
        )
    text = " ".join(unicodedata.normalize("NFC", label).split())
    if not text:
        raise IdentifyError("a label cannot be empty")
    if len(text) > MAX_LABEL_CHARS:
        raise IdentifyError(f"a label is at most {MAX_LABEL_CHARS} characters")
    for i, ch in enumerate(text):
        category = unicodedata.category(ch)
        if category == "Cc":
            raise IdentifyError("a label cannot hold control characters")
        if category == "Cf" and not (ch in JOINERS and 0 < i < len(text) - 1):
            raise IdentifyError(
                f"a label cannot hold the invisible format character U+{ord(ch):04X} "
                f"({unicodedata.name(ch, 'unnamed')})"
            )
    if not any(unicodedata.category(ch)[0] in "LNPS" for ch in text):
        raise IdentifyError("a label needs at least one visible character")
    parts = text.split("/")
    if "\\" in text or text[0] in "/~" or any(p.strip() in (".", "..") for p in parts):
        raise IdentifyError(f"a label cannot look like a path: {text[:60]!r}")
    return text
