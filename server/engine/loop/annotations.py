"""What a decision about a prediction means, in the seeds' words.

An annotation judges one *prediction*: the answer the system gave for one object, a
class or "unknown".

- ``confirmed``: the answer was right. An accepted class that is right, or "unknown"
  for a thing that is none of the classes indexed when it was answered (the reviewer may
  name it: a new class, and the answer was still right).
- ``corrected``: the answer was wrong about the class. An accepted class that is another
  one (known or new, or none at all), or "unknown" for a thing whose class was indexed
  then (the system should have known it).
- ``false_positive``: there is no object of interest there (a hard negative).
- ``missed``: an object no detection covered, with the box the reviewer drew.

A reviewer's keys are gestures (pick a candidate, type a label, "not known", "nothing
there"); ``derive`` turns a gesture into its type, and ``check`` holds an annotation
given with its type (through the API) to the same meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from server.engine.errors import IdentifyError

AnnotationType = Literal["confirmed", "corrected", "false_positive", "missed"]
TYPES: tuple[AnnotationType, ...] = ("confirmed", "corrected", "false_positive", "missed")
_TYPE: dict[object, AnnotationType] = {t: t for t in TYPES}
MAX_AUTHOR_CHARS = 64


@dataclass(frozen=True)
class Prediction:
    """What an annotation judges: the answer given for one object."""

    label: str | None
    """The accepted class; None: the answer was unknown."""
    known_then: Callable[[str], bool]
    """Whether a class had a reference when the answer was given (an "unknown" for one
    of them was a mistake; for any other, it was right)."""


def type_of(value: object) -> AnnotationType:
    """An annotation type from a request.

    Raises:
        IdentifyError: not one of ``TYPES``.
    """
    found = _TYPE.get(value) if isinstance(value, str) else None
    if found is None:
        raise IdentifyError(f"unknown annotation type {value!r}; one of {', '.join(TYPES)}")
    return found


def derive(prediction: Prediction, label: str | None, nothing_there: bool) -> AnnotationType:
    """The type of a reviewer's gesture: ``label`` is the true class (None: none of the
    known ones), ``nothing_there`` says no object of interest is there."""
    if nothing_there:
        return "false_positive"
    if prediction.label is not None:
        return "confirmed" if label == prediction.label else "corrected"
    return "corrected" if label is not None and prediction.known_then(label) else "confirmed"


def check(
    kind: AnnotationType,
    prediction: Prediction,
    label: str | None,
    box: Sequence[int] | None,
) -> str | None:
    """Hold an annotation given with its type to that type's meaning; returns its true
    label (a confirmation without one takes the answer's).

    Raises:
        IdentifyError: the label or box contradicts the type (the message says which
            type it would be).
    """
    if kind == "missed":
        if box is None:
            raise IdentifyError("a missed annotation needs the box of the object not found")
        return label
    if kind == "false_positive":
        if label is not None:
            raise IdentifyError("a false positive has no label: nothing of interest is there")
        return None
    true = prediction.label if kind == "confirmed" and label is None else label
    actual = derive(prediction, true, nothing_there=False)
    if actual != kind:
        answered = "unknown" if prediction.label is None else repr(prediction.label)
        given = "no label" if true is None else f"the label {true!r}"
        raise IdentifyError(f"the answer was {answered}; with {given} that is {actual}, not {kind}")
    return true


def author_of(principal: str, reviewer: str | None) -> str:
    """Who made an annotation: the principal (``local``, or ``token`` for a request
    that carried the server's token), and the reviewer's name when the client gave one."""
    if not reviewer:
        return principal
    name = "".join(ch for ch in reviewer if ch.isprintable())[:MAX_AUTHOR_CHARS].strip()
    return f"{principal}:{name}" if name else principal


def label_matches(label: str | None, wanted: str) -> bool:
    """Whether a hierarchical label (``Cards > Yu-Gi-Oh > Dark Magician``) is ``wanted``
    or lies under it."""
    return label is not None and (label == wanted or label.startswith(wanted + " > "))
