"""Named limits at the edge of the server. Each one has a test that hits it."""

from __future__ import annotations

MAX_REQUEST_BYTES = 20 * 1024 * 1024
"""Largest HTTP request body (an upload); larger ones get 413."""
MAX_JSON_BYTES = 64 * 1024
"""Largest JSON request body (and largest text field of a form)."""
MAX_BULK_JSON_BYTES = 1024 * 1024
"""Largest JSON body of a bulk request (its operations are counted apart)."""
MAX_BULK = 1000
"""Most operations (or items) one bulk request carries; more are refused whole."""
MAX_FORM_PARTS = 8
"""Most parts one multipart form may have (an image and a few text fields)."""
ALLOWED_IMAGE_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/bmp",
        "image/tiff",
        "image/gif",
    }
)
"""Content types accepted for raw image bodies (others get 415). Pixel limits and
decompression-bomb checks happen when decoding (``server.engine.vision.images``)."""
MAX_WS_MESSAGE_BYTES = 4 * 1024 * 1024
"""Largest WebSocket message (a JPEG frame); larger ones close the socket with 1009."""
MAX_FPS_PER_CLIENT = 30.0
"""Frames per second one live client may send; faster frames are dropped (counted)."""
MAX_PENDING_PER_WORKER = 2
"""Images (identify requests, new references) in flight per worker; beyond this, 429 with
``Retry-After`` and nothing is done, so latency under overload stays about two images'
time instead of growing with a queue (with 2 workers: 4 in flight)."""
MAX_WRITES_PER_CLIENT = 4
"""Changing requests (POST, PUT, DELETE) one client address may have in flight; more get
429 at once, so one client cannot hold the engine for everyone else."""
RETRY_AFTER_S = 1
"""What a 429 tells the client to wait (``Retry-After``, seconds)."""
MAX_EVENT_BACKLOG = 256
"""Events buffered per events subscriber; a slow one loses its oldest events."""
COLLECT_INTERVAL_S = 3600.0
"""How often the server applies the storage retention policy (``review.keep_days``) and
removes orphan media files; also once at start."""
INDEX_SAVE_INTERVAL_S = 5.0
"""How often a changed index is written to disk (the database is written at once)."""
SHUTDOWN_GRACE_S = 2.0
"""Seconds given to open sockets and cameras to close on shutdown."""
MAX_RUNNING_JOBS = 2
"""Jobs (imports, bulk review) running at once; another gets 429. Each keeps a worker
busy, so more would starve identification."""
MAX_FINISHED_JOBS = 50
"""Finished jobs kept (in memory) for ``GET /api/jobs``; older ones are forgotten."""
JOB_POLL_S = 0.25
"""How often a request waiting for its job looks whether its client is still there."""
