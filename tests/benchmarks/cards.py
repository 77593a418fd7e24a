"""Near-identical flat things: a playing-card dataset from Debian ``kdegames-card-data-kf5``.

One deck's 52 cards are the references; cards of another deck are the unknowns (another
edition of the same thing: its 7 of clubs must be rejected, not taken for ours). Views
are the accuracy benchmark's (``dataset.make_query``: a tilted, lit, blurred photo of the
card on a background photo, and the crop a detector would give), so ``bench_accuracy``
and ``bench_scenes`` run on it unchanged::

    apt-get install kdegames-card-data-kf5 librsvg2-bin
    python -m tests.benchmarks.cards --deck standard --unknown-deck gm-paris --out .bench/cards
    python -m tests.benchmarks.bench_accuracy --data .bench/cards --work .bench/cards-accuracy

The decks are SVG files with one element per card (``7_club``, ``king_heart``...),
rendered with librsvg's ``rsvg-convert --export-id``. ``PAIRS`` are the deck pairs of
RESULTS.md; the ``svg-nicu-*`` decks and GNOME's cards are left out on purpose (the
issue that asked for this benchmark keeps them for others to judge on).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tests.benchmarks.dataset import (
    BACKGROUND_DIRS,
    DatasetConfig,
    background_paths,
    background_split,
    prepare_out,
    render_views,
    write_image,
)

DECKS_DIR = Path("/usr/share/carddecks")
PAIRS = (
    ("standard", "gm-paris"),
    ("dondorf", "tigullio-international"),
    ("ancient-egyptians", "xskat-german"),
)
"""(references, unknowns): decks that render whole with ``--export-id``, paired so
that both are French-suited and look alike at a glance."""
RANKS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "jack", "queen", "king")
SUITS = ("club", "diamond", "heart", "spade")
RANK_NAMES = {"1": "ace"}
CARD_WIDTH = 300
"""Rendered width of a card in pixels (a reference photo of a card is about this)."""
MAX_RENDER_WIDTH = 8000


def card_ids() -> list[str]:
    """The 52 element ids of a deck, in a fixed order."""
    return [f"{rank}_{suit}" for suit in SUITS for rank in RANKS]


def card_label(card_id: str, deck: str | None = None) -> str:
    """``7_club`` -> ``7 of clubs`` (with the deck's name in front for an unknown deck)."""
    rank, suit = card_id.split("_")
    name = f"{RANK_NAMES.get(rank, rank)} of {suit}s"
    return f"{deck} {name}" if deck else name


def deck_svg(deck: str, decks_dir: Path = DECKS_DIR) -> bytes:
    """The uncompressed SVG of a deck.

    Raises:
        FileNotFoundError: The deck is not installed.
    """
    folder = decks_dir / f"svg-{deck}"
    files = sorted(folder.glob("*.svgz")) + sorted(folder.glob("*.svg"))
    if not files:
        raise FileNotFoundError(
            f"card deck {deck!r} not found under {decks_dir}: "
            "apt-get install kdegames-card-data-kf5"
        )
    data = files[0].read_bytes()
    return gzip.decompress(data) if files[0].suffix == ".svgz" else data


def render(svg: bytes, card_id: str, width: int = CARD_WIDTH) -> np.ndarray:
    """One card as RGBA, cut to its opaque part, about ``width`` pixels wide.

    Some decks' elements reach far beyond the card (clip paths, hidden parts), so the
    card takes a fraction of the rendered width: it is rendered again, larger by that
    fraction (at most ``MAX_RENDER_WIDTH`` wide).

    Raises:
        FileNotFoundError: ``rsvg-convert`` is not installed.
        ValueError: The deck has no such card, or it renders empty.
    """
    card = _render(svg, card_id, width)
    if card.shape[1] < 0.9 * width:
        wider = min(MAX_RENDER_WIDTH, round(width * width / card.shape[1]))
        card = _render(svg, card_id, wider)
    if card.shape[1] > 1.1 * width:
        height = round(card.shape[0] * width / card.shape[1])
        card = cv2.resize(card, (width, height), interpolation=cv2.INTER_AREA)
    return card


def _render(svg: bytes, card_id: str, width: int) -> np.ndarray:
    exe = shutil.which("rsvg-convert")
    if exe is None:
        raise FileNotFoundError("rsvg-convert not found: apt-get install librsvg2-bin")
    run = subprocess.run(
        [exe, f"--export-id={card_id}", f"--width={width}", "--format=png"],
        input=svg,
        capture_output=True,
        check=False,
    )
    image = (
        cv2.imdecode(np.frombuffer(run.stdout, np.uint8), cv2.IMREAD_UNCHANGED)
        if run.returncode == 0 and run.stdout
        else None
    )
    if image is None or image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f"{card_id}: {run.stderr.decode(errors='replace').strip()}")
    rgba = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    ys, xs = np.nonzero(rgba[..., 3] > 8)
    if len(xs) == 0:
        raise ValueError(f"{card_id} renders empty")
    return rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def render_deck(deck: str, decks_dir: Path = DECKS_DIR) -> dict[str, np.ndarray]:
    """All 52 cards of a deck by element id (rendered in parallel)."""
    svg = deck_svg(deck, decks_dir)
    ids = card_ids()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return dict(zip(ids, pool.map(lambda c: render(svg, c), ids), strict=True))


def build_cards(
    out: Path,
    deck: str,
    unknown_deck: str,
    unknown_cards: int = 26,
    queries_per_class: int = 3,
    seed: int = 0,
    decks_dir: Path = DECKS_DIR,
    query_deck: str | None = None,
) -> dict[str, Any]:
    """Write the card dataset into ``out`` (``dataset.py``'s layout) and return its manifest.

    ``unknown_cards`` of the other deck's 52 (a seeded choice) are the unknowns: with
    the defaults a third of the queries, as in the accuracy benchmark. With
    ``query_deck``, the known cards' queries are photos of that deck's cards (the same
    cards drawn otherwise: queries that look different from the references).
    """
    rng_cards, rng_views = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    known = render_deck(deck, decks_dir)
    other = render_deck(unknown_deck, decks_dir)
    chosen = sorted(rng_cards.choice(len(other), size=unknown_cards, replace=False).tolist())
    unknown = {card_label(c, unknown_deck): other[c] for i, c in enumerate(other) if i in chosen}
    references = {card_label(c): im for c, im in known.items()}
    drawn = references
    if query_deck is not None:
        drawn = {card_label(c): im for c, im in render_deck(query_deck, decks_dir).items()}
    config = DatasetConfig(out=out, queries_per_class=queries_per_class, seed=seed)
    _, bench_half = background_split(background_paths(BACKGROUND_DIRS))
    prepare_out(out)
    manifest: dict[str, Any] = {
        "seed": seed,
        "decks": {"references": deck, "unknowns": unknown_deck, "queries": query_deck or deck},
        "classes": sorted(references),
        "unknown_classes": sorted(unknown),
        "queries": [],
        "references": {},
        "sources": {},
        "dropped": [],
        "backgrounds": [str(p) for p in bench_half],
        "params": json.loads(json.dumps(asdict(config), default=str)),
    }
    jobs = []
    for folder, cards in (("references", references), ("unknown_references", unknown)):
        for label, image in cards.items():
            rel = f"{folder}/{label}.png"
            write_image(out / rel, image)
            manifest["references"][label] = rel
            manifest["sources"][label] = "cards"
            shown = drawn[label] if folder == "references" else image
            jobs += [(label, shown)] * queries_per_class
    views = render_views(config, [image for _, image in jobs], bench_half, rng_views)
    for (label, _), view in zip(jobs, views, strict=True):
        head = {"id": view["id"], "label": label, "known": label in references}
        manifest["queries"].append(head | {"source": "cards"} | view)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m tests.benchmarks.cards --out DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--deck", default=PAIRS[0][0], help="the references' deck")
    parser.add_argument("--unknown-deck", default=PAIRS[0][1], help="the unknowns' deck")
    parser.add_argument("--unknown-cards", type=int, default=26)
    parser.add_argument("--queries-per-class", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decks-dir", type=Path, default=DECKS_DIR)
    parser.add_argument(
        "--query-deck", default=None, help="draw the known cards' queries from this deck"
    )
    args = parser.parse_args(argv)
    try:
        manifest = build_cards(
            args.out,
            args.deck,
            args.unknown_deck,
            args.unknown_cards,
            args.queries_per_class,
            args.seed,
            args.decks_dir,
            args.query_deck,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{len(manifest['classes'])} reference cards ({args.deck}), "
        f"{len(manifest['unknown_classes'])} unknown ({args.unknown_deck}), "
        f"{len(manifest['queries'])} queries -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
