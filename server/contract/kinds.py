"""The closed sets of values the API sends: reasons, statuses, actions, scopes."""

from typing import Literal

Reason = Literal["matched", "below_threshold", "low_margin", "empty_index"]
"""Why an object was accepted or not (a queued miss is never ``matched``)."""
QueueReason = Literal["below_threshold", "low_margin", "empty_index", "audit", "low_confidence"]
"""Why a review item is queued: a miss (unknown, too close to a second class, nothing
indexed), or an accepted answer checked too: a sample (``audit``) or one accepted by a
thin margin (``low_confidence``)."""
ReviewStatus = Literal["pending", "confirmed", "corrected", "false_positive", "skipped", "auto"]
"""``pending`` until a person acts (or a re-application finds it matches now: ``auto``);
the others are final."""
FinalStatus = Literal["confirmed", "corrected", "false_positive", "skipped", "auto"]
"""What a person decided about a review item, or ``auto``: a re-application found that
it matches now."""
Region = Literal["whole", "verified", "doubtful"]
"""What a review item's picture shows: the whole picture, or the region the object was
found in, with the reference's geometry found there (``verified``) or not."""
ThresholdScope = Literal["taxonomy", "class"]
ResolveAction = Literal["confirm", "correct", "unknown", "false_positive", "skip"]
"""What a reviewer may do with a queued item: take a candidate, give the right label,
say it is none of the known classes, say nothing of interest is there, or skip it."""
AnnotationType = Literal["confirmed", "corrected", "false_positive", "missed"]
"""What an annotation says of a prediction (see ``server.engine.loop.annotations``)."""
QueueAction = Literal["added", "seen_again", "resolved", "reopened"]
"""What happened to a review item: queued, its picture came again, decided, reopened."""
JobStatus = Literal["running", "done", "cancelled", "failed"]
"""``running``, then one of the others."""

AlertName = Literal["unknown_rate", "confirmed_drop"]
"""``unknown_rate``: too many unknowns among the latest answers; ``confirmed_drop``: the
share of answers reviewers confirm fell against last week."""
