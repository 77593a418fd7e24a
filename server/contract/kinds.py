"""The closed sets of values the API sends: reasons, statuses, actions, scopes."""

from typing import Literal

Reason = Literal["matched", "below_threshold", "low_margin", "empty_index"]
"""Why an object was accepted or not (a queued miss is never ``matched``)."""
ReviewStatus = Literal["pending", "confirmed", "corrected", "false_positive", "skipped"]
"""``pending`` until a person acts; the others are final."""
FinalStatus = Literal["confirmed", "corrected", "false_positive", "skipped"]
"""What a person decided about a review item."""
Region = Literal["whole", "verified", "doubtful"]
"""What a review item's picture shows: the whole picture, or the region the object was
found in, with the reference's geometry found there (``verified``) or not."""
ThresholdScope = Literal["taxonomy", "class"]
ResolveAction = Literal["confirm", "correct", "false_positive", "skip"]
"""What a reviewer may do with a queued item."""
QueueAction = Literal["added", "seen_again", "resolved", "reopened"]
"""What happened to a review item: queued, its picture came again, decided, reopened."""
JobStatus = Literal["running", "done", "cancelled", "failed"]
"""``running``, then one of the others."""
