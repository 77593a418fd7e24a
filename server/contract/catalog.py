"""Classes and their references: listing, adding, renaming, merging."""

# No ``from __future__ import annotations``: on Python 3.11 it makes ``TypedDict`` count
# ``NotRequired`` keys as required (``__required_keys__``), which the contract test reads.
from typing import TypedDict


class ClassInfo(TypedDict):
    """A class with its taxonomy and reference count; ``hub`` when one of its references
    wins matches that do not look alike."""

    label: str
    taxonomy: str
    references: int
    hub: bool


class ClassList(TypedDict):
    """``GET /api/classes``."""

    classes: list[ClassInfo]


class ReferenceInfo(TypedDict):
    """One reference of a class."""

    id: int
    label: str
    taxonomy: str
    source: str
    path: str
    hub: bool


class ReferenceAdded(TypedDict):
    """``POST /api/references``: the new reference and the class it joined."""

    id: int
    label: str
    taxonomy: str


class ClassRenamed(TypedDict):
    """``POST /api/classes/rename``: the new name and how many references moved."""

    label: str
    references: int


class ClassesMerged(TypedDict):
    """``POST /api/classes/merge``: the class kept and how many references moved."""

    label: str
    moved: int


class ClassReferences(TypedDict):
    """``GET /api/classes/references?label=``."""

    label: str
    references: list[ReferenceInfo]
