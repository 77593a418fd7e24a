"""Build the development dataset of the accuracy benchmark from installed packages.

Sources (nothing is downloaded here):

- Debian ``tuxpaint-stamps-default``: photo cut-outs with alpha (and some cartoons) under
  ``/usr/share/tuxpaint/stamps``.
- npm ``svg-country-flags``: public-domain flags, a hard fine-grained set. Get it with
  ``npm pack svg-country-flags && tar xzf svg-country-flags-*.tgz`` (the ``package``
  folder holds ``png250px/`` and ``countries.json``), then pass that folder with
  ``--flags-dir`` or ``IDENTIFY_FLAGS_DIR``.
- Debian ``plasma-workspace-wallpapers`` and ``mate-backgrounds``: real photos and art as
  backgrounds, split into a half for ``identify verify`` and a half for the benchmark.

Usage::

    python -m tests.benchmarks.dataset --out .bench/data

Layout of the output folder: ``references/<label>.png`` (known classes),
``unknown_references/<label>.png`` (held-out classes, never indexed),
``queries/frames/<id>.jpg`` and ``queries/crops/<id>.jpg`` (camera-like views of both),
and ``manifest.json`` which is the authority on labels, sources and boxes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from server.engine.vision import backdrops, synth

log = logging.getLogger(__name__)

TUXPAINT_DIR = Path("/usr/share/tuxpaint/stamps")
BACKGROUND_DIRS = (Path("/usr/share/wallpapers"), Path("/usr/share/backgrounds"))
FLAGS_ENV = "IDENTIFY_FLAGS_DIR"
MIN_SIDE_PX = 64
"""References whose opaque part has a shorter side below this are too small to use."""
NEAR_DUPLICATE_SHARE = 0.01
"""Two references are near-duplicates when fewer than this share of thumbnail pixels differ."""
VISIBLE_DIFFERENCE = 0.2
"""A thumbnail pixel differs when a channel differs by more than this (0-1 scale)."""
THUMB_SIZE = (48, 32)
BACKGROUND_SIZE = (800, 600)
"""Backgrounds are decoded once at this size; each view takes a random 640x480 crop of it."""
FRAME_SIZE = (640, 480)
GLYPH_STAMP_DIRS = (
    "symbols/alphabets/english",
    "symbols/alphabets/german",
    "symbols/alphabets/spanish",
    "symbols/math",
)
"""Flat letter and operator glyphs: not objects anyone photographs, and at ~150 files
they would crowd the photos out of a sample (the ASL hand photos stay)."""
MIRROR_SUFFIX = re.compile(r"[_-](mirror|mirrored|flip|flipped)$", re.IGNORECASE)
UNSAFE_FILENAME = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


@dataclass(frozen=True)
class DatasetConfig:
    """What to build and where."""

    out: Path
    """Output folder; its dataset files are replaced."""
    flags_dir: Path | None = None
    """The unpacked ``svg-country-flags`` npm package (``None``: no flag classes)."""
    tuxpaint_dir: Path = TUXPAINT_DIR
    """Root of the Tux Paint stamps."""
    background_dirs: tuple[Path, ...] = BACKGROUND_DIRS
    """Folders searched recursively for background photos."""
    tuxpaint_classes: int = 120
    """Number of stamp classes (known and unknown together)."""
    flag_classes: int = 80
    """Number of flag classes (known and unknown together)."""
    unknown_share: float = 0.25
    """Share of each source's classes held out of the index as unknowns."""
    queries_per_class: int = 3
    """Camera views made of each class."""
    seed: int = 0
    """Seeds every random choice."""
    strength: float = 1.0
    """Distortion strength of the views (see ``synth.camera_view``)."""


@dataclass(frozen=True)
class Candidate:
    """A possible class: a readable label and the image it comes from."""

    label: str
    source: str
    path: Path


@dataclass
class Selection:
    """References chosen for one source, and what was dropped on the way."""

    images: dict[str, np.ndarray] = field(default_factory=dict)
    candidates: dict[str, Candidate] = field(default_factory=dict)
    dropped: list[dict[str, str]] = field(default_factory=list)


def build_dataset(config: DatasetConfig) -> dict[str, Any]:
    """Build the whole dataset into ``config.out`` and return its manifest.

    Raises:
        FileNotFoundError: A source that is asked for is not installed.
    """
    seeds = np.random.SeedSequence(config.seed).spawn(4)
    rng_stamps, rng_flags, rng_unknown, rng_views = (np.random.default_rng(s) for s in seeds)
    stamps = select(tuxpaint_candidates(config.tuxpaint_dir), config.tuxpaint_classes, rng_stamps)
    flags = Selection()
    if config.flag_classes > 0:
        if config.flags_dir is None:
            raise FileNotFoundError(
                "svg-country-flags not found: run `npm pack svg-country-flags`, "
                f"unpack it and set {FLAGS_ENV}"
            )
        flags = select(
            flag_candidates(config.flags_dir), config.flag_classes, rng_flags, exclude=stamps.images
        )
    unknown = {
        label
        for sel in (stamps, flags)
        for label in _hold_out(sel, config.unknown_share, rng_unknown)
    }
    _, bench_half = background_split(background_paths(config.background_dirs))
    prepare_out(config.out)
    manifest: dict[str, Any] = {
        "seed": config.seed,
        "classes": sorted(
            label for sel in (stamps, flags) for label in sel.images if label not in unknown
        ),
        "unknown_classes": sorted(unknown),
        "queries": [],
        "references": {},
        "sources": {},
        "dropped": stamps.dropped + flags.dropped,
        "backgrounds": [str(p) for p in bench_half],
        "params": json.loads(json.dumps(asdict(config), default=str)),
    }
    jobs = []
    for sel in (stamps, flags):
        for label, image in sel.images.items():
            folder = "unknown_references" if label in unknown else "references"
            rel = f"{folder}/{safe_filename(label)}.png"
            write_image(config.out / rel, image)
            manifest["references"][label] = rel
            manifest["sources"][label] = sel.candidates[label].source
            jobs += [(label, image, sel.candidates[label].source)] * config.queries_per_class
    images = [image for _, image, _ in jobs]
    for (label, _, source), query in zip(
        jobs, render_views(config, images, bench_half, rng_views), strict=True
    ):
        head = {"id": query["id"], "label": label, "known": label not in unknown, "source": source}
        manifest["queries"].append(head | query)
    (config.out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    return manifest


def render_views(
    config: DatasetConfig,
    images: Sequence[np.ndarray],
    backgrounds: Sequence[Path],
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """One camera view of each of ``images`` (on a drawn background photo), written into
    ``config.out``; their manifest entries, in order.

    One generator per view: the views are independent, so they render in parallel
    (OpenCV releases the GIL) and stay identical whatever the thread timing.
    """
    drawn = query_backgrounds(backgrounds, len(images), rng)
    rngs = rng.spawn(len(images))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(
            pool.map(
                lambda n: make_query(config, n, images[n], drawn[n], rngs[n]), range(len(images))
            )
        )


def find_flags_dir(repo_root: Path | None = None) -> Path | None:
    """Locate the unpacked ``svg-country-flags`` package.

    Looks at ``$IDENTIFY_FLAGS_DIR``, then ``node_modules/svg-country-flags`` under the
    repository (``npm install --no-save svg-country-flags@1.2.10`` puts it there;
    ``tests/run.sh`` does).
    """
    root = repo_root or Path(__file__).resolve().parents[2]
    env = os.environ.get(FLAGS_ENV)
    options = [Path(env)] if env else []
    options += [root / "node_modules" / "svg-country-flags"]
    for option in options:
        if (option / "countries.json").is_file() and (option / "png250px").is_dir():
            return option
    return None


def background_paths(dirs: Iterable[Path]) -> list[Path]:
    """Background image files under ``dirs``, sorted.

    Skips symlinks (the wallpaper packages link every resolution to one file; copied
    without links they become 13-byte text placeholders, skipped for being tiny) and
    the ``screenshot`` previews, which are downscaled copies of the wallpapers.
    """
    found = []
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            if path.suffix.lower() not in {".jpg", ".jpeg", ".png"} or path.stem == "screenshot":
                continue
            if path.is_symlink() or not path.is_file() or path.stat().st_size < 1024:
                continue
            found.append(path)
    return sorted(found)


def background_split(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """Split backgrounds into two disjoint halves: (verify's half, the benchmark's half).

    Deterministic and independent of input order: groups are ordered by a hash of their
    key and dealt alternately. Variants of one wallpaper (resolutions, dark version)
    share a group, so the same picture never lands in both halves.
    """
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        groups[_background_group(Path(path))].append(Path(path))
    order = sorted(groups, key=lambda key: hashlib.sha256(key.encode()).hexdigest())
    halves: tuple[list[Path], list[Path]] = ([], [])
    for i, key in enumerate(order):
        halves[i % 2].extend(groups[key])
    return sorted(halves[0]), sorted(halves[1])


def tuxpaint_candidates(stamps_dir: Path) -> list[Candidate]:
    """Every usable stamp, with a unique readable label, sorted by path.

    Pre-mirrored variants (``*_mirror``), letter glyphs and stamps too small by their
    header are left out here; transparent margins are judged later, on the decoded image.
    """
    if not stamps_dir.is_dir():
        raise FileNotFoundError(
            f"{stamps_dir} not found: install the Debian package tuxpaint-stamps-default"
        )
    paths = []
    for path in sorted(stamps_dir.rglob("*.png")):
        rel = path.relative_to(stamps_dir)
        if MIRROR_SUFFIX.search(path.stem) or any(
            rel.as_posix().startswith(d + "/") for d in GLYPH_STAMP_DIRS
        ):
            continue
        with Image.open(path) as im:
            if min(im.size) < MIN_SIDE_PX:
                continue
        paths.append(rel)
    labels = stamp_labels(paths)
    return [Candidate(labels[p], "tuxpaint", stamps_dir / p) for p in paths]


def flag_candidates(flags_dir: Path) -> list[Candidate]:
    """Every flag in the package's ``png250px`` folder, labelled by country name."""
    names = json.loads((flags_dir / "countries.json").read_text(encoding="utf-8"))
    return [
        Candidate(names.get(path.stem.upper(), path.stem.upper()), "flags", path)
        for path in sorted((flags_dir / "png250px").glob("*.png"))
    ]


def select(
    candidates: Sequence[Candidate],
    count: int,
    rng: np.random.Generator,
    exclude: dict[str, np.ndarray] | None = None,
) -> Selection:
    """Take ``count`` candidates in a seeded order, skipping small ones and near-duplicates.

    A candidate is dropped (and logged) when its opaque part is too small or it looks
    the same as one already taken (or one in ``exclude``), e.g. Chad after Romania.
    """
    sel = Selection()
    kept: list[tuple[str, np.ndarray]] = [
        (label, thumbnail(image)) for label, image in (exclude or {}).items()
    ]
    for index in rng.permutation(len(candidates)):
        if len(sel.images) >= count:
            break
        cand = candidates[int(index)]
        if cand.label in sel.images or any(cand.label == label for label, _ in kept):
            continue
        image = read_reference(cand.path)
        if image is None or min(image.shape[:2]) < MIN_SIDE_PX:
            sel.dropped.append(
                {"label": cand.label, "source": cand.source, "reason": "too small or unreadable"}
            )
            continue
        thumb = thumbnail(image)
        twin = next((label for label, other in kept if is_near_duplicate(thumb, other)), None)
        if twin is not None:
            log.info("dropped %s %r: looks the same as %r", cand.source, cand.label, twin)
            sel.dropped.append(
                {"label": cand.label, "source": cand.source, "reason": f"near-duplicate of {twin}"}
            )
            continue
        kept.append((cand.label, thumb))
        sel.images[cand.label] = image
        sel.candidates[cand.label] = cand
    if len(sel.images) < count:
        log.warning("only %d of %d classes available", len(sel.images), count)
    return sel


def read_reference(path: Path) -> np.ndarray | None:
    """Decode a reference: RGBA trimmed to its opaque part if it has transparency, else RGB."""
    try:
        with Image.open(path) as im:
            has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
            image = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    except (OSError, ValueError) as exc:
        log.warning("unreadable reference %s: %s", path, exc)
        return None
    if not has_alpha:
        return image
    if image[..., 3].min() == 255:
        return np.ascontiguousarray(image[..., :3])
    ys, xs = np.nonzero(image[..., 3] > 16)
    if len(xs) == 0:
        return None
    return np.ascontiguousarray(image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A tiny float RGB thumbnail (0-1) over mid-grey, for near-duplicate checks."""
    rgb = image[..., :3].astype(np.float32)
    if image.shape[2] == 4:
        alpha = image[..., 3:].astype(np.float32) / 255
        rgb = (rgb * alpha + np.float32(128) * (1 - alpha)).astype(np.float32)
    return cv2.resize(rgb, THUMB_SIZE, interpolation=cv2.INTER_AREA) / np.float32(255)


def is_near_duplicate(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two thumbnails differ visibly in almost no pixel.

    Counting clearly different pixels (instead of a mean difference) separates a shade
    change (Romania vs Chad: same everywhere but slightly different blue) from a small
    emblem (Egypt vs Yemen), which is hard but learnable and stays in as a hard case.
    """
    differs = np.abs(a - b).max(axis=2) > VISIBLE_DIFFERENCE
    return float(differs.mean()) < NEAR_DUPLICATE_SHARE


def safe_filename(label: str) -> str:
    """The label with characters that are unsafe in file names replaced by '-'."""
    return UNSAFE_FILENAME.sub("-", label).strip(" .") or "unnamed"


def readable(words: Iterable[str]) -> str:
    """Join file-name words into a readable label: 'measuring_tape' -> 'Measuring Tape'."""
    text = " ".join(words)
    text = re.sub(r"[_\-]+", " ", text)
    text = re.sub(r"(?<=\d)(?=[A-Za-z])|(?<=[a-z])(?=\d)|(?<=[a-z])(?=[A-Z])", " ", text)
    return " ".join(w[:1].upper() + w[1:] for w in text.split())


def stamp_labels(paths: Sequence[Path]) -> dict[Path, str]:
    """Label each stamp by its name, prefixing parent folders only where names collide.

    Names with no letters ('euro/coins/001') always get their folders.
    """
    depth = {p: 0 if re.search("[A-Za-z]", p.stem) else 2 for p in paths}

    def label(p: Path) -> str:
        parents = p.parent.parts
        return readable([*parents[len(parents) - min(depth[p], len(parents)) :], p.stem])

    while True:
        groups: dict[str, list[Path]] = defaultdict(list)
        for p in paths:
            groups[label(p).casefold()].append(p)
        clashing = [
            p
            for group in groups.values()
            if len(group) > 1
            for p in group
            if depth[p] < len(p.parent.parts)
        ]
        if not clashing:
            break
        for p in clashing:
            depth[p] += 1
    labels = {p: label(p) for p in paths}
    seen: dict[str, int] = defaultdict(int)
    for p in paths:  # identical paths cannot happen; this guards case-only clashes
        seen[labels[p].casefold()] += 1
        if seen[labels[p].casefold()] > 1:
            labels[p] = f"{labels[p]} {seen[labels[p].casefold()]}"
    return labels


def _background_group(path: Path) -> str:
    """Wallpaper packages keep one picture per folder: ``<Name>/contents/images/...``."""
    parts = path.parts
    if "contents" in parts:
        return parts[parts.index("contents") - 1]
    return path.name


def _hold_out(sel: Selection, share: float, rng: np.random.Generator) -> list[str]:
    """Choose the unknown classes of one source (a seeded share, rounded)."""
    labels = sorted(sel.images)
    count = min(len(labels), round(share * len(labels)))
    return [labels[i] for i in sorted(rng.choice(len(labels), size=count, replace=False))]


def query_backgrounds(
    paths: Sequence[Path], count: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """A background for each of ``count`` queries, decoding (in parallel) only the photos drawn.

    Falls back to procedural backgrounds when no photo is installed or readable.
    """
    if paths:
        picks = rng.integers(len(paths), size=count).tolist()
        used = sorted(set(picks))
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            loaded = dict(
                zip(
                    used,
                    pool.map(
                        lambda i: backdrops.load_backgrounds([paths[i]], BACKGROUND_SIZE), used
                    ),
                    strict=True,
                )
            )
        good = [loaded[i][0] for i in used if loaded[i]]
        if good:
            return [loaded[i][0] if loaded[i] else good[i % len(good)] for i in picks]
    log.warning("no background photos found; using procedural backgrounds")
    fallback = [backdrops.fallback_background(rng, BACKGROUND_SIZE) for _ in range(min(16, count))]
    return [fallback[i % len(fallback)] for i in range(count)]


def make_query(
    config: DatasetConfig,
    number: int,
    image: np.ndarray,
    background: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Render one view of a class, write its frame and crop, return its manifest entry."""
    query_id = f"q{number:05d}"
    view = synth.camera_view(image, background, rng, size=FRAME_SIZE, strength=config.strength)
    frame, crop = f"queries/frames/{query_id}.jpg", f"queries/crops/{query_id}.jpg"
    write_image(config.out / frame, view.frame)
    write_image(config.out / crop, synth.crop_object(view, rng))
    return {
        "id": query_id,
        "frame": frame,
        "crop": crop,
        "bbox": list(view.bbox),
        "quad": np.round(view.quad.astype(np.float64), 1).tolist(),
    }


def prepare_out(out: Path) -> None:
    """Remove a previous build's files (only the ones this module writes)."""
    for name in ("references", "unknown_references", "queries"):
        shutil.rmtree(out / name, ignore_errors=True)
    (out / "manifest.json").unlink(missing_ok=True)
    for name in ("references", "unknown_references", "queries/frames", "queries/crops"):
        (out / name).mkdir(parents=True, exist_ok=True)


def write_image(path: Path, image: np.ndarray) -> None:
    """Write RGB(A) as PNG or JPEG (quality 95); encoding in memory keeps unicode paths safe."""
    code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else []
    ok, data = cv2.imencode(path.suffix, cv2.cvtColor(image, code), params)
    if not ok:
        raise OSError(f"could not encode {path}")
    path.write_bytes(data.tobytes())


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m tests.benchmarks.dataset --out DIR``."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="example: python -m tests.benchmarks.dataset --out .bench/data --seed 1",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--flags-dir",
        type=Path,
        help=f"unpacked svg-country-flags package (default: ${FLAGS_ENV} or found)",
    )
    parser.add_argument("--tuxpaint-dir", type=Path, default=TUXPAINT_DIR)
    parser.add_argument(
        "--background-dir",
        type=Path,
        action="append",
        help="repeatable (default: Debian wallpapers)",
    )
    parser.add_argument("--tuxpaint-classes", type=int, default=120)
    parser.add_argument("--flag-classes", type=int, default=80)
    parser.add_argument("--unknown-share", type=float, default=0.25)
    parser.add_argument("--queries-per-class", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strength", type=float, default=1.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = DatasetConfig(
        out=args.out,
        flags_dir=args.flags_dir or find_flags_dir(),
        tuxpaint_dir=args.tuxpaint_dir,
        background_dirs=tuple(args.background_dir or BACKGROUND_DIRS),
        tuxpaint_classes=args.tuxpaint_classes,
        flag_classes=args.flag_classes,
        unknown_share=args.unknown_share,
        queries_per_class=args.queries_per_class,
        seed=args.seed,
        strength=args.strength,
    )
    try:
        manifest = build_dataset(config)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{len(manifest['classes'])} known + {len(manifest['unknown_classes'])} unknown classes, "
        f"{len(manifest['queries'])} queries, {len(manifest['dropped'])} dropped -> {config.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
