"""One error hierarchy for the whole product.

Every error a user can cause carries a one-line message meant for them and an HTTP
status, so the CLI prints it to stderr, the server renders it as JSON and the TUI shows
it in a modal -- all from the same object.
"""

from __future__ import annotations


class IdentifyError(Exception):
    """Base of every error that is the user's to fix (bad input, bad config...)."""

    status: int = 400
    code: str = "identify_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProjectConfigError(IdentifyError):
    """The project file is missing, malformed, or has an unknown key or wrong type."""

    code = "project_config"


class ImageRejected(IdentifyError):
    """An image could not be used: unreadable, truncated, empty, too big, not an image."""

    status = 422
    code = "image_rejected"


class IndexMismatchError(IdentifyError):
    """The index on disk was built with another model, dimension, dtype or projection."""

    status = 409
    code = "index_mismatch"


class NoReferencesError(IdentifyError):
    """The reference folders hold no usable image."""

    code = "no_references"


class ModelUnavailableError(IdentifyError):
    """A model's weights cannot be loaded (no network, missing file...)."""

    status = 503
    code = "model_unavailable"


class NotIndexedError(IdentifyError):
    """Identification was asked for before `identify index` ran."""

    status = 409
    code = "not_indexed"


class NotFoundError(IdentifyError):
    """An id, class or item that does not exist (or no longer does)."""

    status = 404
    code = "not_found"


class ConflictError(IdentifyError):
    """The request contradicts the current state: a class name taken, an item already
    resolved by someone else, a project owned by a running server."""

    status = 409
    code = "conflict"


class BusyError(IdentifyError):
    """Too much work in flight; try again shortly (nothing was done)."""

    status = 429
    code = "busy"
