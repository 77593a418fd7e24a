"""Making one reference from an image's bytes, in two halves: ``prepare`` (check the
label, decode, pass the quality gate, embed the image and its synthetic views, find its
local features: heavy and read-only, so it runs on a worker) and ``write`` (its file and
rows, in one transaction). The server adds the vector to its open index after
``write``; a command leaves that to the next ``sync_index``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server.engine.catalog.media import Media
from server.engine.catalog.store import ReviewItem, Store
from server.engine.catalog.vectors import ReferenceEvidence, embed_reference, reference_vector_id
from server.engine.errors import ImageRejected, NotFoundError
from server.engine.project.config import Project
from server.engine.project.naming import clean_label
from server.engine.vision.embedders import Embedder
from server.engine.vision.images import (
    MAX_WORK_SIDE,
    content_hash,
    decode_image,
    encode_jpeg,
    flatten_alpha,
    stored_form,
)
from server.engine.vision.locate import to_box
from server.engine.vision.quality import gate

REGION_GROWTH = 0.1
"""A reference made from a box takes this share of the box's size as context on each
side (the index's references are framed loosely, too)."""


@dataclass(frozen=True)
class PreparedReference:
    """A reference ready to be written (see ``prepare``)."""

    label: str
    taxonomy: str | None
    """As asked; None: the class's own, or the default, decided when committed."""
    digest: str
    stored: bytes
    """The file kept under ``media/references`` (see ``images.stored_form``)."""
    suffix: str
    size: tuple[int, int]
    evidence: ReferenceEvidence


def prepare(
    project: Project,
    embedder: Embedder,
    data: bytes,
    label: object,
    taxonomy: str | None,
    backgrounds: list[np.ndarray],
) -> PreparedReference:
    """The heavy, read-only half. Touches neither the database nor the index.

    Raises:
        ImageRejected: not a usable image, or one the quality gate refuses.
        IdentifyError: a bad label.
    """
    name = clean_label(label)
    image = decode_image(data, "reference", keep_alpha=True, max_side=MAX_WORK_SIDE)
    review = project.config.review
    why_not = gate(flatten_alpha(image), review)
    if why_not is not None:
        setting = {
            "too_small": f"review.min_crop_side {review.min_crop_side} px",
            "noise": f"review.min_pixel_correlation {review.min_pixel_correlation}",
            "blurry": f"review.min_sharpness {review.min_sharpness}",
        }[why_not]
        raise ImageRejected(
            f"the reference is {why_not.replace('_', ' ')} ({setting}): a poor "
            "reference would attract wrong matches"
        )
    digest = content_hash(data)
    evidence = embed_reference(project, embedder, image, digest, backgrounds)
    stored, suffix = stored_form(data, image)
    return PreparedReference(
        name, taxonomy, digest, stored, suffix, (image.shape[1], image.shape[0]), evidence
    )


def write(
    project: Project,
    embedder: Embedder,
    store: Store,
    media: Media,
    prepared: PreparedReference,
    taxonomy: str,
    source: str,
    also: Callable[[int], None] | None = None,
) -> int:
    """Store the file and the rows in one transaction; ``also(reference id)`` writes
    more in it (if it raises, nothing of the reference is written either). Returns the
    reference's id."""
    size = prepared.size
    path = media.write("references", prepared.digest, prepared.suffix, prepared.stored)
    try:
        with store.transaction():
            ref_id = store.add_reference(
                path=path,
                content_hash=prepared.digest,
                label=prepared.label,
                taxonomy=taxonomy,
                rarity=None,
                source=source,
                width=size[0],
                height=size[1],
            )
            prepared.evidence.save(store, ref_id, reference_vector_id(project, embedder), size)
            if also is not None:
                also(ref_id)
    except BaseException:
        media.forget(path, -1)  # rolled back: the file too, unless shared
        raise
    return ref_id


def reference_bytes(item: ReviewItem, box: list[int] | None, region: str | None) -> bytes:
    """What a label makes a reference of: the region the object was found in (or the
    box the reviewer gave), grown by ``REGION_GROWTH``, or with ``region="whole"`` the
    whole stored picture.

    Raises:
        NotFoundError: the item's picture is gone.
    """
    own_box = box == item.box
    if box is not None and region != "whole" and own_box and item.region_path:
        try:
            return Path(item.region_path).read_bytes()  # the region as it came
        except OSError:
            pass  # gone: cut it from the stored picture instead
    try:
        data = Path(item.crop_path).read_bytes()
    except OSError:
        raise NotFoundError(f"the picture of review item {item.id} is missing") from None
    if box is None or region == "whole":
        return data
    picture = decode_image(data, f"review item {item.id}")
    h, w = picture.shape[:2]
    x0, y0, x1, y1 = box
    gx0, gy0, gx1, gy1 = to_box((x0 / w, y0 / h, x1 / w, y1 / h), w, h, REGION_GROWTH)
    if gx1 - gx0 < 2 or gy1 - gy0 < 2:
        return data
    return encode_jpeg(np.ascontiguousarray(picture[gy0:gy1, gx0:gx1]), 95)
