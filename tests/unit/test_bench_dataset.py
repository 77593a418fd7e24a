"""The benchmark's dataset builder, on the real Debian and npm packages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.benchmarks import dataset

DEBIAN_DIRS = (dataset.TUXPAINT_DIR, *dataset.BACKGROUND_DIRS)
needs_debian = pytest.mark.skipif(
    not all(d.is_dir() for d in DEBIAN_DIRS),
    reason="needs Debian tuxpaint-stamps-default, plasma-workspace-wallpapers and mate-backgrounds",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, bool]:
    if not all(d.is_dir() for d in DEBIAN_DIRS):
        pytest.skip(
            "needs Debian tuxpaint-stamps-default, plasma-workspace-wallpapers and mate-backgrounds"
        )
    flags_dir = dataset.find_flags_dir()
    out = tmp_path_factory.mktemp("bench")
    config = dataset.DatasetConfig(
        out=out,
        flags_dir=flags_dir,
        tuxpaint_classes=4,
        flag_classes=4 if flags_dir else 0,
        queries_per_class=1,
        seed=3,
    )
    return out, dataset.build_dataset(config), flags_dir is not None


def test_manifest_lists_known_and_unknown_classes(built: tuple[Path, dict, bool]) -> None:
    out, manifest, with_flags = built
    on_disk = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk["seed"] == 3 and on_disk["classes"] == manifest["classes"]
    known, unknown = set(manifest["classes"]), set(manifest["unknown_classes"])
    sources = 2 if with_flags else 1
    assert len(known) == 3 * sources and len(unknown) == 1 * sources  # 25 % of 4 held out
    assert not known & unknown
    assert {manifest["sources"][label] for label in known | unknown} == (
        {"tuxpaint", "flags"} if with_flags else {"tuxpaint"}
    )


def test_references_are_split_into_known_and_held_out_folders(
    built: tuple[Path, dict, bool],
) -> None:
    out, manifest, _ = built
    known = {p.name for p in (out / "references").iterdir()}
    unknown = {p.name for p in (out / "unknown_references").iterdir()}
    assert known == {Path(manifest["references"][c]).name for c in manifest["classes"]}
    assert unknown == {Path(manifest["references"][c]).name for c in manifest["unknown_classes"]}
    for label in manifest["classes"]:
        image = Image.open(out / manifest["references"][label])
        assert min(image.size) >= dataset.MIN_SIDE_PX
        if manifest["sources"][label] == "tuxpaint" and image.mode == "RGBA":
            alpha = np.asarray(image)[..., 3]
            assert alpha.min() < 255  # cut-outs keep their transparency


def test_every_class_has_a_frame_and_a_crop(built: tuple[Path, dict, bool]) -> None:
    out, manifest, _ = built
    queries = manifest["queries"]
    labels = manifest["classes"] + manifest["unknown_classes"]
    assert sorted(q["label"] for q in queries) == sorted(labels)
    assert len({q["id"] for q in queries}) == len(queries)
    for q in queries:
        assert q["known"] == (q["label"] in manifest["classes"])
        assert q["source"] == manifest["sources"][q["label"]]
        frame = Image.open(out / q["frame"])
        crop = Image.open(out / q["crop"])
        assert frame.size == dataset.FRAME_SIZE and frame.mode == "RGB"
        x1, y1, x2, y2 = q["bbox"]
        assert 0 <= x1 < x2 <= frame.size[0] and 0 <= y1 < y2 <= frame.size[1]
        assert crop.size[0] > 0 and crop.size[1] > 0


def test_the_same_seed_builds_the_same_dataset(
    built: tuple[Path, dict, bool], tmp_path: Path
) -> None:
    _, manifest, with_flags = built
    config = dataset.DatasetConfig(
        out=tmp_path,
        flags_dir=dataset.find_flags_dir(),
        tuxpaint_classes=4,
        flag_classes=4 if with_flags else 0,
        queries_per_class=1,
        seed=3,
    )
    again = dataset.build_dataset(config)
    assert again["queries"] == manifest["queries"]
    first = Path(manifest["params"]["out"]) / manifest["queries"][0]["frame"]
    assert first.read_bytes() == (tmp_path / again["queries"][0]["frame"]).read_bytes()


@needs_debian
def test_background_halves_are_disjoint_and_keep_wallpaper_variants_together() -> None:
    paths = dataset.background_paths(dataset.BACKGROUND_DIRS)
    assert paths and not any(p.is_symlink() or p.stem == "screenshot" for p in paths)
    verify_half, bench_half = dataset.background_split(paths)
    assert set(verify_half).isdisjoint(bench_half)
    assert sorted(verify_half + bench_half) == paths
    assert dataset.background_split(reversed(paths)) == (verify_half, bench_half)
    assert abs(len(verify_half) - len(bench_half)) <= 0.3 * len(paths)
    wallpapers = {
        p.parts[p.parts.index("contents") - 1] for p in verify_half if "contents" in p.parts
    }
    assert not any(
        "contents" in p.parts and p.parts[p.parts.index("contents") - 1] in wallpapers
        for p in bench_half
    )


def test_background_split_of_placeholders_and_plain_files(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.jpg", "c.png", "d.jpg"):
        (tmp_path / name).write_bytes(b"x" * 2048)
    (tmp_path / "placeholder.jpg").write_text("2560x1600.jpg")  # 13 bytes
    (tmp_path / "screenshot.png").write_bytes(b"x" * 2048)
    paths = dataset.background_paths([tmp_path])
    assert [p.name for p in paths] == ["a.jpg", "b.jpg", "c.png", "d.jpg"]
    verify_half, bench_half = dataset.background_split(paths)
    assert len(verify_half) == len(bench_half) == 2


def test_flag_shades_are_near_duplicates_but_emblems_are_not() -> None:
    def tricolour(colours: list[tuple[int, int, int]], emblem: bool = False) -> np.ndarray:
        image = np.zeros((100, 150, 3), np.uint8)
        for i, colour in enumerate(colours):
            image[:, i * 50 : (i + 1) * 50] = colour
        if emblem:
            image[35:65, 60:90] = (20, 120, 40)
        return image

    romania = tricolour([(0, 43, 127), (252, 209, 22), (206, 17, 38)])
    chad = tricolour([(0, 38, 100), (254, 203, 0), (198, 12, 48)])
    assert dataset.is_near_duplicate(dataset.thumbnail(romania), dataset.thumbnail(chad))
    with_emblem = tricolour([(0, 43, 127), (252, 209, 22), (206, 17, 38)], emblem=True)
    assert not dataset.is_near_duplicate(dataset.thumbnail(romania), dataset.thumbnail(with_emblem))


def test_real_identical_flags_are_dropped_and_logged(tmp_path: Path) -> None:
    flags_dir = dataset.find_flags_dir()
    if flags_dir is None:
        pytest.skip(
            "svg-country-flags not found: `npm pack svg-country-flags`, unpack it, "
            f"set {dataset.FLAGS_ENV}"
        )
    names = {"td": "Chad", "ro": "Romania", "id": "Indonesia", "mc": "Monaco", "ng": "Nigeria"}
    candidates = [c for c in dataset.flag_candidates(flags_dir) if c.path.stem in names]
    chosen = dataset.select(candidates, 5, np.random.default_rng(0))
    assert len(chosen.images) == 3
    assert "Nigeria" in chosen.images
    assert len({"Chad", "Romania"} & set(chosen.images)) == 1
    assert len({"Indonesia", "Monaco"} & set(chosen.images)) == 1
    assert all("near-duplicate" in d["reason"] for d in chosen.dropped)


@pytest.mark.parametrize(
    ("words", "label"),
    [
        (["measuring_tape"], "Measuring Tape"),
        (["coins", "001penny"], "Coins 001 Penny"),
        (["DinosaurSings"], "Dinosaur Sings"),
        (["xing-school"], "Xing School"),
    ],
)
def test_readable_labels(words: list[str], label: str) -> None:
    assert dataset.readable(words) == label


def test_colliding_stamp_names_get_their_folder() -> None:
    paths = [
        Path("food/fruit/banana.png"),
        Path("food/fruit/cartoon/banana.png"),
        Path("euro/coins/001.png"),
    ]
    labels = dataset.stamp_labels(paths)
    assert labels[paths[0]] == "Fruit Banana" and labels[paths[1]] == "Cartoon Banana"
    assert labels[paths[2]] == "Euro Coins 001"


def test_unsafe_characters_leave_file_names() -> None:
    assert dataset.safe_filename("Virgin Islands, U.S.") == "Virgin Islands, U.S"
    assert dataset.safe_filename("AC/DC") == "AC-DC"
