"""The playing-card benchmark's cards, rendered from Debian's KDE card decks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.benchmarks import cards

pytestmark = pytest.mark.skipif(
    not (cards.DECKS_DIR / "svg-standard").is_dir() or shutil.which("rsvg-convert") is None,
    reason="needs Debian kdegames-card-data-kf5 and librsvg2-bin",
)


def test_a_deck_has_52_cards_with_readable_names() -> None:
    ids = cards.card_ids()
    assert len(ids) == len(set(ids)) == 52
    assert cards.card_label("1_spade") == "ace of spades"
    assert cards.card_label("10_heart", "gm-paris") == "gm-paris 10 of hearts"


def test_cards_render_whole_at_one_width_even_where_the_deck_draws_beyond_them() -> None:
    # gm-paris draws its jacks inside an element far larger than the card: rendered
    # plainly, the jack would be 13 px wide.
    for deck, card_id in (("standard", "7_club"), ("gm-paris", "jack_diamond")):
        image = cards.render(cards.deck_svg(deck), card_id)
        h, w = image.shape[:2]
        assert image.shape[2] == 4
        assert 0.9 * cards.CARD_WIDTH <= w <= 1.1 * cards.CARD_WIDTH, (deck, card_id, w)
        assert 1.2 < h / w < 1.7  # a playing card's proportions
        assert image[h // 2, w // 2, 3] == 255  # opaque inside


def test_a_missing_deck_or_card_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="kdegames-card-data-kf5"):
        cards.deck_svg("no-such-deck", tmp_path)
    with pytest.raises(ValueError, match="13_club"):
        cards.render(cards.deck_svg("standard"), "13_club")
