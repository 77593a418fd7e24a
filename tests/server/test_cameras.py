"""Server-side cameras: a video file stands in for a camera (OpenCV reads both)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from server.engine.live.cameras import Camera, parse_source
from server.engine.project.config import CameraConfig, Project
from server.engine.vision import detectors
from server.engine.vision.detectors import Detection, WholePicture
from server.engine.vision.images import decode_image

from .conftest import KNOWN_QUERY, UNKNOWN_QUERY, Client, query

Serve = Callable[..., Awaitable[Client]]


def write_video(path: Path, photos: list[str], frames_each: int = 8, fps: int = 10) -> Path:
    """An MJPG video showing each demo query photo for ``frames_each`` frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (448, 448))
    assert writer.isOpened()
    for name in photos:
        rgb = cv2.resize(decode_image(query(name), name), (448, 448))
        for _ in range(frames_each):
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


async def wait_for(predicate: Callable[[], Awaitable[Any]], timeout: float = 60) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_sources_are_parsed(tmp_path: Path) -> None:
    assert parse_source("0") == 0
    assert parse_source("rtsp://cam.local/stream") == "rtsp://cam.local/stream"
    assert parse_source("clip.avi", tmp_path) == str(tmp_path / "clip.avi")


async def test_video_file_camera_feeds_events_and_the_queue(
    serve: Serve, project: Project, tmp_path: Path
) -> None:
    video = write_video(tmp_path / "shelf.avi", [KNOWN_QUERY, UNKNOWN_QUERY])
    client = await serve(project, cameras=(CameraConfig(source=str(video), name="shelf", fps=10),))
    async with client.ws_connect("/api/events") as ws:
        labels: set[str | None] = set()

        async def seen_both() -> bool:
            msg = await asyncio.wait_for(ws.receive_json(), 30)
            if msg["type"] == "identification":
                assert msg["source"] == "camera:shelf"
                labels.add(msg["objects"][0]["label"])
            return "Brazil" in labels and None in labels

        await wait_for(seen_both)

    async def queued() -> Any:
        body = await (await client.get("/api/review")).json()
        return body["items"] if body["total"] else None

    items = await wait_for(queued)
    assert items[0]["source"] == "camera:shelf"
    health = await (await client.get("/api/health")).json()
    assert health["cameras"][0]["state"] == "live"


async def test_missing_camera_source_is_reported_and_the_server_stays_up(
    serve: Serve, project: Project, tmp_path: Path
) -> None:
    client = await serve(project, cameras=(CameraConfig(source=str(tmp_path / "gone.avi")),))

    async def reconnecting() -> Any:
        cams = (await (await client.get("/api/health")).json())["cameras"]
        return cams[0]["state"] == "reconnecting" and "no such video file" in cams[0]["error"]

    await wait_for(reconnecting, timeout=10)
    resp = await client.post(
        "/api/identify", data=query(KNOWN_QUERY), headers={"Content-Type": "image/jpeg"}
    )
    assert resp.status == 200


class DyingCapture:
    """A device that delivers a few frames, then fails, as an unplugged camera does."""

    opened = 0

    def __init__(self, source: object) -> None:
        DyingCapture.opened += 1
        self.left = 3

    def isOpened(self) -> bool:  # OpenCV's protocol
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.left == 0:
            return False, None
        self.left -= 1
        return True, np.zeros((48, 64, 3), np.uint8)

    def get(self, prop: int) -> float:
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        pass


def test_camera_that_dies_is_reopened() -> None:
    cam = Camera(CameraConfig(source="0"), opener=DyingCapture).start()
    try:
        deadline = time.monotonic() + 10
        while DyingCapture.opened < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert DyingCapture.opened >= 2
        assert cam.reconnects >= 1 and cam.frames_read >= 3
        frame = cam.latest()
        assert frame is not None and frame.image.shape == (48, 64, 3)
    finally:
        cam.stop()
    assert cam.state == "stopped"


class FlakyDetector:
    """A detector that raises on every other picture, as a model hitting a driver error
    mid-stream does; the rest of the time the whole picture is the one thing."""

    kind = "none"

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.calls += 1
        if self.calls % 2:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return WholePicture().detect(image)


async def test_a_detector_that_raises_mid_stream_loses_a_frame_not_the_camera(
    serve: Serve, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = FlakyDetector()
    monkeypatch.setattr(detectors, "make", lambda config, data_dir: flaky)
    video = write_video(tmp_path / "desk.avi", [KNOWN_QUERY], frames_each=20)
    client = await serve(project, cameras=(CameraConfig(source=str(video), name="desk", fps=20),))
    async with client.ws_connect("/api/events") as ws:
        identified = 0

        async def several_identified() -> bool:
            nonlocal identified
            msg = await asyncio.wait_for(ws.receive_json(), 30)
            identified += msg["type"] == "identification" and msg["source"] == "camera:desk"
            return identified >= 3

        await wait_for(several_identified)
    assert flaky.calls >= 5  # frames kept coming after the failures
    cam = (await (await client.get("/api/health")).json())["cameras"][0]
    assert cam["state"] == "live" and cam["failed_frames"] >= 2
    assert "RuntimeError: CUDA error" in cam["identify_error"]
