"""Label naming rules: file and folder names become human labels (the seed's rules)."""

from __future__ import annotations

import pytest

from server.engine.project.config import NamingRules
from server.engine.project.naming import label_from_name, with_prefix

RULES = NamingRules()


def test_set_code_and_rarity_are_split_off_a_file_stem() -> None:
    parsed = label_from_name("LOCH-JP001_dark_magician_scr", RULES)
    assert parsed.label == "Dark Magician"
    assert parsed.rarity == "scr"


@pytest.mark.parametrize("stem", ["SDK-001_Kuriboh", "LOB-EN005_kuriboh", "DUNE-EN0001A_kuriboh"])
def test_various_set_codes_are_stripped(stem: str) -> None:
    assert label_from_name(stem, RULES).label == "Kuriboh"


def test_stem_without_set_code_or_rarity_only_gets_cosmetic_rules() -> None:
    parsed = label_from_name("dark_magician", RULES)
    assert parsed.label == "Dark Magician"
    assert parsed.rarity is None


def test_underscores_and_runs_of_spaces_become_single_spaces() -> None:
    assert label_from_name("  dark__magician   girl ", RULES).label == "Dark Magician Girl"


def test_title_case_capitalises_words_and_keeps_inner_capitals() -> None:
    assert label_from_name("McDonald_burger", RULES).label == "McDonald Burger"
    assert (
        label_from_name("SDK-001_Blue-Eyes_White_Dragon_ur", RULES).label
        == "Blue-Eyes White Dragon"
    )


def test_title_case_does_not_capitalise_after_a_hyphen() -> None:
    # Only the first letter of each space-separated word is raised; the rest is kept.
    assert label_from_name("blue-eyes_white_dragon", RULES).label == "Blue-eyes White Dragon"


def test_title_case_leaves_small_inner_words_as_written() -> None:
    assert label_from_name("ace_of_clubs", RULES).label == "Ace of Clubs"
    assert label_from_name("the_lord_of_the_rings", RULES).label == "The Lord of the Rings"
    assert label_from_name("Ace_Of_Clubs", RULES).label == "Ace Of Clubs"  # as written
    assert label_from_name("what_it_is_for", RULES).label == "What It Is For"  # last word


def test_title_case_can_be_turned_off() -> None:
    rules = NamingRules(title_case=False)
    assert label_from_name("LOCH-JP001_dark_magician_scr", rules).label == "dark magician"


def test_set_code_stripping_can_be_turned_off() -> None:
    rules = NamingRules(strip_set_code=False)
    parsed = label_from_name("LOCH-JP001_dark_magician_scr", rules)
    assert parsed.label == "LOCH-JP001 Dark Magician"
    assert parsed.rarity == "scr"


def test_unknown_suffix_is_part_of_the_label_not_a_rarity() -> None:
    parsed = label_from_name("dark_magician_girl", RULES)
    assert parsed.label == "Dark Magician Girl"
    assert parsed.rarity is None


def test_custom_rarity_suffixes_are_used() -> None:
    rules = NamingRules(rarity_suffixes=("foil",))
    assert label_from_name("pikachu_foil", rules).rarity == "foil"
    assert label_from_name("pikachu_ur", rules).rarity is None


def test_folder_names_keep_set_codes_and_rarity_words() -> None:
    parsed = label_from_name("LOCH-JP001_dark_magician_scr", RULES, is_file=False)
    assert parsed.label == "LOCH-JP001 Dark Magician Scr"
    assert parsed.rarity is None


def test_folder_names_get_the_cosmetic_rules() -> None:
    assert label_from_name("blue_eyes", RULES, is_file=False).label == "Blue Eyes"


def test_a_name_that_cleans_to_nothing_keeps_a_non_empty_label() -> None:
    assert label_from_name("___", RULES).label.strip()
    assert label_from_name("   ", RULES).label == "Unnamed"


def test_with_prefix_joins_with_an_arrow() -> None:
    assert with_prefix("Dark Magician", "Cards > Yu-Gi-Oh") == "Cards > Yu-Gi-Oh > Dark Magician"


def test_with_prefix_normalises_spacing_around_separators() -> None:
    assert with_prefix("Dark Magician", " Cards>Yu-Gi-Oh >") == "Cards > Yu-Gi-Oh > Dark Magician"


@pytest.mark.parametrize("prefix", [None, ""])
def test_with_no_prefix_the_label_is_unchanged(prefix: str | None) -> None:
    assert with_prefix("Dark Magician", prefix) == "Dark Magician"
