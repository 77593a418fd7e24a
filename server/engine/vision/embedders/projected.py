"""A projection head on a frozen embedder (the seed's ``train``, with held-out checks).

The head is small -- one linear map fitted in closed form (learnt whitening, the
default), or the seed's MLP (in -> hidden -> out, GELU; 0.8M parameters on
EfficientNet-Lite0's 1280-d vectors) -- with an L2-normalised output, and is fitted by
``identify train`` on synthetic camera views of the project's own references
(``server.engine.workflows.train``). It re-weights what the frozen model already sees towards
what tells *these* classes apart. A head file
records the model it was trained on; its id is a hash of its bytes, and that id is part
of the vector space's id, so an index or calibration made without it is never mixed
with one made with it.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from server.engine.errors import ModelUnavailableError
from server.engine.vision.embedders.base import Embedder, ModelSpec, l2_normalise

HEAD_FORMAT = 2
"""Version of the head file's layout (1: MLP heads only, read as such)."""


def head_module(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """The MLP head's layers (output not yet normalised)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))


HeadModule = nn.Linear | nn.Sequential
"""A linear head, or the MLP of ``head_module``."""


def _shape(module: HeadModule) -> tuple[int, int | None, int]:
    """(in, hidden or None for a linear head, out) of a head module."""
    if isinstance(module, nn.Linear):
        return module.in_features, None, module.out_features
    first, last = module[0], module[2]
    assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear)
    return first.in_features, first.out_features, last.out_features


class Head:
    """Fitted head weights plus what they were fitted on."""

    def __init__(
        self,
        module: HeadModule,
        base_model: str,
        meta: dict[str, Any],
        folds: Sequence[tuple[HeadModule, frozenset[str]]] = (),
    ) -> None:
        self.module = module.eval()
        self.base_model = base_model
        self.meta = meta
        self.folds = tuple((m.eval(), held_out) for m, held_out in folds)
        """Fold heads and the classes each never saw."""
        self.in_dim, self.hidden, self.out_dim = _shape(module)
        self.kind = "linear" if self.hidden is None else "mlp"
        self.id = self._content_id()

    def _content_id(self) -> str:
        """A hash of the weights and what they were trained on, in a fixed order (not of
        torch's file format, which may change between torch versions)."""
        digest = hashlib.sha256(
            json.dumps(
                {
                    "base_model": self.base_model,
                    "meta": self.meta,
                    "folds": [sorted(held_out) for _, held_out in self.folds],
                },
                sort_keys=True,
            ).encode()
        )
        for module in (self.module, *(m for m, _ in self.folds)):
            for name, tensor in module.state_dict().items():
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().numpy().tobytes())
        return "head-" + digest.hexdigest()[:12]

    def fold_for(self, label: str) -> int | None:
        """Index of the fold head that never saw ``label`` (None: no fold left it out, or
        no folds were trained; a class added after training was seen by no head)."""
        return next((i for i, (_, held_out) in enumerate(self.folds) if label in held_out), None)

    def project(self, vectors: np.ndarray, module: HeadModule | None = None) -> np.ndarray:
        """(N, in_dim) model vectors -> (N, out_dim) L2-normalised head vectors (through
        ``module``, a fold head, when given)."""
        with torch.inference_mode():
            out = (module or self.module)(
                torch.from_numpy(np.ascontiguousarray(vectors, np.float32))
            )
        return l2_normalise(out.numpy())

    def to_bytes(self) -> bytes:
        """The head file's content (deterministic for the same weights)."""
        buf = io.BytesIO()
        torch.save(
            {
                "format": HEAD_FORMAT,
                "kind": self.kind,
                "base_model": self.base_model,
                "hidden": self.hidden,
                "meta": self.meta,
                "state": self.module.state_dict(),
                "folds": [
                    {"held_out": sorted(held_out), "state": m.state_dict()}
                    for m, held_out in self.folds
                ],
            },
            buf,
        )
        return buf.getvalue()

    def save(self, path: Path) -> None:
        """Write the head file atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(self.to_bytes())
        tmp.replace(path)


def load_head(path: Path, base: ModelSpec, expected_id: str | None = None) -> Head:
    """Read a head file and check it belongs to ``base``.

    Raises:
        ModelUnavailableError: missing or unreadable file, trained on another model, or
            not the head the project names.
    """
    fix = (
        "run `identify train` again, or delete the `projection:` block of the project "
        "file (then `identify index`) to use the plain model"
    )
    try:
        data = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
        linear = data.get("kind", "mlp") == "linear"  # format 1 had MLP heads only

        def module_from(state: dict[str, Any]) -> HeadModule:
            # Each module's own shape: a fold head sees fewer vectors, which may span
            # fewer directions than the full head keeps.
            if linear:
                module: HeadModule = nn.Linear(
                    int(state["weight"].shape[1]), int(state["weight"].shape[0])
                )
            else:
                module = head_module(
                    int(state["0.weight"].shape[1]),
                    int(data["hidden"]),
                    int(state["2.weight"].shape[0]),
                )
            module.load_state_dict(state)
            return module

        folds = [
            (module_from(f["state"]), frozenset(map(str, f["held_out"])))
            for f in data.get("folds", [])
        ]
        head = Head(
            module_from(data["state"]), str(data["base_model"]), dict(data.get("meta", {})), folds
        )
    except FileNotFoundError:
        raise ModelUnavailableError(f"projection head {path} is missing: {fix}") from None
    except Exception as exc:  # noqa: BLE001 - a head file is a torch pickle: any failure is "bad file"
        raise ModelUnavailableError(
            f"projection head {path} cannot be read ({type(exc).__name__}): {fix}"
        ) from None
    if head.base_model != base.model_id or head.in_dim != base.dim:
        raise ModelUnavailableError(
            f"projection head {path} was trained on {head.base_model} ({head.in_dim}-d) but "
            f"the project uses {base.model_id} ({base.dim}-d): {fix}"
        )
    if expected_id is not None and head.id != expected_id:
        raise ModelUnavailableError(
            f"projection head {path} is {head.id}, the project names {expected_id}: {fix}"
        )
    return head


class ProjectedEmbedder:
    """An embedder whose vectors go through a projection head."""

    def __init__(self, base: Embedder, head: Head) -> None:
        self.base = base
        self.head = head
        self.spec = replace(base.spec, dim=head.out_dim, projection=head.id)

    @property
    def device(self) -> str:
        """The base model's device (the head runs beside it)."""
        return self.base.device

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """See ``Embedder.preprocess``."""
        return self.base.preprocess(image)

    def embed_batch(self, batch: np.ndarray) -> np.ndarray:
        """See ``Embedder.embed_batch``."""
        return self.head.project(self.base.embed_batch(batch))

    def __getattr__(self, name: str) -> Any:
        # Window vectors of one feature map (``locate``) are projected like any other.
        if name == "region_vectors":
            regional = getattr(self.base, name)

            def projected(*args: Any, **kwargs: Any) -> tuple[Any, np.ndarray]:
                wins, vectors = regional(*args, **kwargs)
                return wins, (
                    self.head.project(vectors)
                    if len(vectors)
                    else np.zeros((0, self.spec.dim), np.float32)
                )

            return projected
        raise AttributeError(name)
