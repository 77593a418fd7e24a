"""MLX against torch: the same vectors, and how fast each is here.

Per dataset, the first ``--images`` query crops are embedded by both backends, for
EfficientNet-Lite0 (the packaged weights) and, with ``--clip``, CLIP ViT-B-32 (seeded
weights saved to a file: no CLIP weights can be fetched here; the speed does not depend
on the values): the cosine between the two vectors of each image (parity), and
milliseconds per image at batch 16 (or all the images, when fewer) and batch 1, each
the median of ``--repeats`` timed passes after one warm-up::

    python -m tests.benchmarks.bench_mlx --data .bench/data --data .bench/cards-cross --clip
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.project.config import ModelConfig
from server.engine.vision.embedders import Embedder, create_embedder
from server.engine.vision.images import load_image
from tests.conftest import REPO


def _ms_per_image(embedder: Embedder, batch: np.ndarray, repeats: int) -> float:
    embedder.embed_batch(batch)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        embedder.embed_batch(batch)
        times.append(time.perf_counter() - t0)
    return round(1000 * float(np.median(times)) / len(batch), 2)


def run(data: Path, model: dict[str, Any], images: int, repeats: int) -> dict[str, Any]:
    manifest = json.loads((data / "manifest.json").read_text())
    crops = [load_image(data / q["crop"]) for q in manifest["queries"][:images]]
    torch_e = create_embedder(ModelConfig(**model, device="cpu"))
    mlx_e = create_embedder(ModelConfig(**model, device="cpu", backend="mlx"))
    batch = np.stack([torch_e.preprocess(c) for c in crops])
    a, b = torch_e.embed_batch(batch), mlx_e.embed_batch(batch)
    cosine = (a * b).sum(axis=1)
    out: dict[str, Any] = {
        "data": data.name,
        "model": model["name"],
        "images": len(crops),
        "cosine_min": round(float(cosine.min()), 6),
        "cosine_mean": round(float(cosine.mean()), 6),
        "mlx_device": mlx_e.device,
    }
    for name, e in (("torch", torch_e), ("mlx", mlx_e)):
        out[f"{name}_ms_batch16"] = _ms_per_image(e, batch[:16], repeats)
        out[f"{name}_ms_batch1"] = _ms_per_image(e, batch[:1], repeats)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", default=[])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "results" / "mlx.json")
    parser.add_argument("--clip", action="store_true", help="Also CLIP ViT-B-32 (seeded).")
    args = parser.parse_args()
    models: list[dict[str, Any]] = [{"name": "efficientnet-lite0"}]
    if args.clip:
        import open_clip
        import torch

        torch.manual_seed(0)
        checkpoint = REPO / ".bench" / "vit-b-32-seed0.pt"
        if not checkpoint.is_file():
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            torch.save(open_clip.create_model("ViT-B-32").state_dict(), checkpoint)
        models.append({"name": "ViT-B-32", "checkpoint": checkpoint})
    results = [run(d, m, args.images, args.repeats) for m in models for d in args.data]
    for r in results:
        print(json.dumps(r), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
