"""Rebuild the demo's images from their packages (maintainers only; the output is committed).

Needs Debian `tuxpaint-stamps-default` and `mate-backgrounds`, and the npm package
`svg-country-flags` unpacked (`npm pack svg-country-flags && tar xzf svg-country-flags-*.tgz`):

    python examples/demo/build_demo.py --flags package/

Writes examples/demo/references/ (one file per class: the file name is the label) and
examples/demo/queries/ (camera-like photos made by identify's own synthetic camera,
composited onto MATE background photos, which `identify verify` does not use).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2
import numpy as np

from server.engine.vision import synth
from server.engine.vision.images import load_image

HERE = Path(__file__).parent
STAMPS = Path("/usr/share/tuxpaint/stamps/food/fruit")
BACKGROUNDS = Path("/usr/share/backgrounds/mate/nature")
FRUIT = [
    "pineapple",
    "apple_granny_smith",
    "apple_red",
    "apple_fuji",
    "pear",
    "grapes",
    "lemon",
    "mango",
    "kiwi",
    "banana",
    "avocado",
    "pomegranate",
    "strawberry",
]
FLAGS = {
    "br": "Brazil",
    "ca": "Canada",
    "in": "India",
    "za": "South_Africa",
    "se": "Sweden",
    "jp": "Japan",
}
UNKNOWN_FRUIT = ["orange", "raspberry"]
UNKNOWN_FLAGS = {"de": "Germany"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--flags", type=Path, required=True, help="unpacked svg-country-flags")
    args = ap.parse_args()
    refs, queries = HERE / "references", HERE / "queries"
    for d in (refs, queries):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    known = {name: STAMPS / f"{name}.png" for name in FRUIT}
    known |= {label: args.flags / "png250px" / f"{code}.png" for code, label in FLAGS.items()}
    unknown = {name: STAMPS / f"{name}.png" for name in UNKNOWN_FRUIT}
    unknown |= {
        label: args.flags / "png250px" / f"{code}.png" for code, label in UNKNOWN_FLAGS.items()
    }
    for label, src in known.items():
        shutil.copy(src, refs / f"{label}.png")
    rng = np.random.default_rng(7)
    bgs = synth.load_backgrounds(sorted(BACKGROUNDS.glob("*.jpg")), rng=rng)
    for kind, group in (("known", known), ("unknown", unknown)):
        for label, src in group.items():
            view = synth.camera_view(
                load_image(src, keep_alpha=True), bgs[int(rng.integers(len(bgs)))], rng
            )
            crop = synth.crop_object(view, rng)
            name = f"{kind}-{label.lower()}.jpg"
            cv2.imwrite(
                str(queries / name),
                cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 88],
            )


if __name__ == "__main__":
    main()
