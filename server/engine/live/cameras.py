"""Server-side cameras: one OpenCV capture per source, read on its own thread.

A source is a device number (``0``), a video file (played at its own frame rate and
looped, a stand-in for a camera) or a stream URL (RTSP/HTTP). Only the newest frame is
kept: a consumer that is slower than the camera skips frames instead of falling behind.
A source that cannot be opened or stops delivering is reopened with a growing pause;
its state is visible in ``status``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from server import contract
from server.engine.project.config import CameraConfig

log = logging.getLogger(__name__)

RETRY_FIRST_S = 0.5
"""Pause before the first reconnection attempt."""
RETRY_MAX_S = 5.0
"""Longest pause between reconnection attempts."""
FALLBACK_FILE_FPS = 25.0
"""Playback rate of a video file that does not say its own."""

Opener = Callable[[int | str], Any]
"""Makes a capture object with ``isOpened``, ``read``, ``get``, ``set`` and
``release`` (``cv2.VideoCapture``; tests may pass another with the same protocol)."""


def open_capture(source: int | str) -> Any:
    """The default ``Opener``: OpenCV's capture of a device, file or URL."""
    return cv2.VideoCapture(source)


def parse_source(source: str, base: Path | None = None) -> int | str:
    """A device number, a URL, or a file path (relative to ``base``)."""
    text = source.strip()
    if text.isdigit():
        return int(text)
    if "://" in text:
        return text
    path = Path(text).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return str(path)


@dataclass(frozen=True)
class Frame:
    """A frame from a camera (RGB) and its sequence number."""

    seq: int
    image: np.ndarray
    at: float


class Camera:
    """Reads one source on a daemon thread; see the module docstring."""

    def __init__(
        self, cfg: CameraConfig, base: Path | None = None, opener: Opener = open_capture
    ) -> None:
        self.cfg = cfg
        self.source = parse_source(cfg.source, base)
        self.name = cfg.name or cfg.source
        self._opener = opener
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera:{self.name}", daemon=True)
        self.state = "starting"
        self.frames_read = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self.failed_frames = 0
        """Frames read whose identification failed (see ``identify_error``)."""
        self.identify_error: str | None = None

    @property
    def is_file(self) -> bool:
        """The source is a video file (looped at its own frame rate)."""
        return isinstance(self.source, str) and "://" not in self.source

    def start(self) -> Camera:
        """Start reading."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop reading and release the source."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def latest(self, after: int = 0) -> Frame | None:
        """The newest frame if it is newer than sequence number ``after``."""
        with self._lock:
            frame = self._frame
        return frame if frame is not None and frame.seq > after else None

    def status(self) -> contract.CameraStatus:
        """State for health: ``live``, ``reconnecting``...; frames read, last error."""
        return {
            "name": self.name,
            "state": self.state,
            "frames": self.frames_read,
            "reconnects": self.reconnects,
            "error": self.last_error,
            "failed_frames": self.failed_frames,
            "identify_error": self.identify_error,
        }

    def _run(self) -> None:
        pause = RETRY_FIRST_S
        while not self._stop.is_set():
            if self.is_file and not Path(str(self.source)).is_file():
                self._failed(f"no such video file: {self.source}")
            else:
                cap = self._opener(self.source)
                try:
                    if cap.isOpened():
                        pause = RETRY_FIRST_S
                        self._read(cap)
                    else:
                        self._failed(f"cannot open {self.source}")
                finally:
                    cap.release()
            if self._stop.wait(pause):
                break
            pause = min(pause * 2, RETRY_MAX_S)
            self.reconnects += 1
        self.state = "stopped"

    def _failed(self, why: str) -> None:
        if why != self.last_error:
            log.warning("camera %s: %s; retrying", self.name, why)
        self.last_error = why
        self.state = "reconnecting"

    def _read(self, cap: Any) -> None:
        fps = cap.get(cv2.CAP_PROP_FPS) if self.is_file else 0.0
        interval = (
            1.0 / (fps if fps and 0 < fps < 240 else FALLBACK_FILE_FPS) if self.is_file else 0.0
        )
        next_at = time.monotonic()
        while not self._stop.is_set():
            ok, bgr = cap.read()
            if not ok or bgr is None:
                if self.is_file and self.frames_read and cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                    ok, bgr = cap.read()  # loop the file
                if not ok or bgr is None:
                    self._failed(f"{self.source} stopped delivering frames")
                    return
            self.state, self.last_error = "live", None
            self.frames_read += 1
            image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            with self._lock:
                seq = self._frame.seq + 1 if self._frame else 1
                self._frame = Frame(seq, image, time.monotonic())
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_at = time.monotonic()
