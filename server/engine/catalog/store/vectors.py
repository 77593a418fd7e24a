"""What is stored per image and model: embeddings, local features and colour layouts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from server.engine.catalog.store.base import StoreBase


class VectorRows(StoreBase):
    """Embeddings, local features and colour layouts, per image."""

    def put_embedding(self, image_id: int, model_id: str, vector: np.ndarray) -> None:
        """Store (or replace) one image's embedding under a model id."""
        self._insert(
            "embeddings",
            {
                "image_id": image_id,
                "model_id": model_id,
                "vector": np.asarray(vector, np.float32).tobytes(),
            },
            replace_on=("image_id", "model_id"),
        )

    def embeddings(self, ids: Sequence[int], model_id: str) -> dict[int, np.ndarray]:
        """Stored embeddings of ``ids`` under ``model_id`` (missing ids are absent)."""
        out: dict[int, np.ndarray] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for image_id, blob in self.db.execute(
                f"select image_id, vector from embeddings where model_id = ? "
                f"and image_id in ({marks})",
                [model_id, *chunk],
            ):
                out[int(image_id)] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_features(
        self,
        image_id: int,
        kind: str,
        keypoints: np.ndarray,
        descriptors: np.ndarray,
        size: tuple[int, int],
    ) -> None:
        """Store local features (keypoints (N, 2) float32, descriptors (N, D) uint8)."""
        self._insert(
            "features",
            {
                "image_id": image_id,
                "kind": kind,
                "keypoints": np.asarray(keypoints, np.float32).tobytes(),
                "descriptors": np.asarray(descriptors, np.uint8).tobytes(),
                "width": size[0],
                "height": size[1],
            },
            replace_on=("image_id", "kind"),
        )

    def features(
        self, image_id: int, kind: str
    ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]] | None:
        """Stored local features of one image (keypoints, descriptors, and the size of
        the image they were found in), or None."""
        row = self.db.execute(
            "select keypoints, descriptors, width, height from features"
            " where image_id = ? and kind = ?",
            [image_id, kind],
        ).fetchone()
        if row is None:
            return None
        kps = np.frombuffer(row[0], dtype=np.float32).reshape(-1, 2)
        desc = (
            np.frombuffer(row[1], dtype=np.uint8).reshape(len(kps), -1)
            if len(kps)
            else np.zeros((0, 32), np.uint8)
        )
        return kps, desc, (int(row[2]), int(row[3]))

    def feature_ids(self, kind: str) -> set[int]:
        """Ids of images with stored features of ``kind``."""
        return {
            int(r[0])
            for r in self.db.execute("select image_id from features where kind = ?", [kind])
        }

    def put_layout(self, image_id: int, layout: bytes, aspect: float) -> None:
        """Store (or replace) one image's colour layout (``appearance.Layout.to_bytes``)
        and the aspect (width / height) of the picture it describes."""
        self._insert(
            "layouts",
            {"image_id": image_id, "layout": layout, "aspect": aspect},
            replace_on=("image_id",),
        )

    def layout(self, image_id: int) -> tuple[bytes, float] | None:
        """One image's stored colour layout and aspect, or None."""
        row = self.db.execute(
            "select layout, aspect from layouts where image_id = ?", [image_id]
        ).fetchone()
        return None if row is None else (bytes(row[0]), float(row[1]))

    def layout_ids(self) -> set[int]:
        """Ids of images with a stored colour layout."""
        return {int(r[0]) for r in self.db.execute("select image_id from layouts")}
