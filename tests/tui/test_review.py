"""The review screen, driven by keys against a real server."""

from __future__ import annotations

from identify_tui.screens.review import ReviewScreen

from .conftest import UNKNOWN_QUERY, Server, query, tui, until


def review(app: object) -> ReviewScreen:
    screen = app.screen  # type: ignore[attr-defined]
    assert isinstance(screen, ReviewScreen)
    return screen


async def test_correcting_by_keys_teaches_the_server(server: Server) -> None:
    item = await server.queue_unknown()
    app = tui(server)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: review(app).shown_id == item)
        await pilot.press("c")
        await until(pilot, lambda: app.screen.__class__.__name__ == "LabelPrompt")
        await pilot.press(*"Germany", "enter")
        await until(pilot, lambda: review(app).current is None)
        # A new class for an unknown answer: the answer was right (see README).
        resolved = await until(pilot, lambda: _status(server, item, "confirmed"))
        assert resolved["resolved_label"] == "Germany"
    obj = await server.identify(query(UNKNOWN_QUERY), record="0")
    assert obj["label"] == "Germany" and obj["matched"]


async def _status(server: Server, item: int, status: str) -> dict[str, object] | None:
    body = await server.get(f"/api/review/{item}")
    return body if body["status"] == status else None


async def test_one_key_confirms_a_candidate_and_the_next_item_shows(server: Server) -> None:
    first, second = await server.queue_unknown(), await server.queue_unknown()
    app = tui(server)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: review(app).shown_id == second)  # newest first
        await pilot.press("2")
        assert review(app).shown_id == first  # at once, before the server answered
        # The answer was unknown and the reviewer named an indexed class: a correction.
        item = await until(pilot, lambda: _status(server, second, "corrected"))
        listed = await server.get(f"/api/review/{first}")
        assert item["resolved_label"] == listed["candidates"][1]["label"]


async def test_none_and_nothing_are_annotated_apart(server: Server) -> None:
    first, second = await server.queue_unknown(), await server.queue_unknown()
    app = tui(server)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: review(app).shown_id == second)
        await pilot.press("n")  # none of the known classes: "unknown" was right
        await until(pilot, lambda: review(app).shown_id == first)
        await pilot.press("x")  # nothing of interest there
        await until(pilot, lambda: _status(server, first, "false_positive"))
        await until(pilot, lambda: _status(server, second, "confirmed"))
        page = await server.get("/api/annotations")
        assert {a["item_id"]: a["type"] for a in page["annotations"]} == {
            second: "confirmed",
            first: "false_positive",
        }
        assert all(a["author"].startswith("local:") for a in page["annotations"])


async def test_undo_puts_the_item_back(server: Server) -> None:
    item = await server.queue_unknown()
    app = tui(server)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: review(app).shown_id == item)
        await pilot.press("x")
        await until(pilot, lambda: _status(server, item, "false_positive"))
        await pilot.press("u")
        await until(pilot, lambda: review(app).shown_id == item)
        assert (await server.get(f"/api/review/{item}"))["status"] == "pending"


async def test_undo_reaches_back_a_bounded_number_of_decisions(
    server: Server, monkeypatch: object
) -> None:
    from identify_tui.screens import review as review_module

    monkeypatch.setattr(review_module, "UNDO_DEPTH", 2)  # type: ignore[attr-defined]
    items = [await server.queue_unknown() for _ in range(3)]
    app = tui(server)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: review(app).shown_id == items[-1])
        await pilot.press("x", "x", "x")
        for item in items:
            await until(pilot, lambda item=item: _status(server, item, "false_positive"))
        assert [d.item["id"] for d in review(app).undo_stack] == items[1::-1]
        await pilot.press("u", "u", "u")  # the third has nothing left to take back
        await until(pilot, lambda: review(app).shown_id == items[1])
        assert (await server.get(f"/api/review/{items[2]}"))["status"] == "false_positive"
        assert not review(app).undo_stack


async def test_bulk_selection_is_labelled_at_once(server: Server) -> None:
    ids = [await server.queue_unknown() for _ in range(3)]
    app = tui(server)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: review(app).shown_id == ids[-1])
        await pilot.press("space", "space")  # the two newest
        assert review(app).selected == {ids[2], ids[1]}
        await pilot.press("s")
        await until(pilot, lambda: _status(server, ids[1], "skipped"))
        await until(pilot, lambda: _status(server, ids[2], "skipped"))
        assert review(app).shown_id == ids[0]
    assert (await server.get(f"/api/review/{ids[0]}"))["status"] == "pending"


async def test_item_resolved_elsewhere_is_not_labelled_twice(server: Server) -> None:
    item = await server.queue_unknown()
    app = tui(server)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await until(pilot, lambda: review(app).shown_id == item)
        await server.post(f"/api/review/{item}/resolve", {"action": "skip"})
        await pilot.press("x")
        await until(pilot, lambda: any("already skipped" in n.message for n in app._notifications))
        assert review(app).current is None
    assert (await server.get(f"/api/review/{item}"))["status"] == "skipped"


async def test_new_misses_appear_without_a_keypress(server: Server) -> None:
    app = tui(server)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.events.connected)
        assert review(app).current is None
        item = await server.queue_unknown()
        await until(pilot, lambda: review(app).shown_id == item)


async def test_odd_characters_in_a_label_are_kept_and_an_empty_one_changes_nothing(
    server: Server,
) -> None:
    first, second = await server.queue_unknown(), await server.queue_unknown()
    app = tui(server)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await until(pilot, lambda: review(app).shown_id == second)
        await pilot.press("c")
        await until(pilot, lambda: app.screen.__class__.__name__ == "LabelPrompt")
        await pilot.press(*"Flags > Deutschland (schwarz/rot/gold)", "enter")
        done = await until(pilot, lambda: _status(server, second, "confirmed"))
        assert done["resolved_label"] == "Flags > Deutschland (schwarz/rot/gold)"
        # An empty answer changes nothing.
        await until(pilot, lambda: review(app).shown_id == first)
        await pilot.press("c")
        await until(pilot, lambda: app.screen.__class__.__name__ == "LabelPrompt")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen))
        assert review(app).shown_id == first
    assert (await server.get(f"/api/review/{first}"))["status"] == "pending"


def test_a_queue_line_keeps_its_score_whole_and_shortens_the_label() -> None:
    from identify_tui.screens.review import LIST_CELLS, describe

    item = {
        "id": 12345,
        "reason": "low_margin",
        "score": 0.5349,
        "candidates": [{"label": "Ace of Hearts with a very long name"}],
    }
    line = describe(item)
    assert len(line) == LIST_CELLS and line.endswith(" 0.535")
    assert "~ Ace of Hearts" in line and "…" in line
    short = describe({**item, "reason": "below_threshold", "candidates": [{"label": "Joker"}]})
    assert "? Joker" in short and short.endswith(" 0.535") and "…" not in short


async def test_a_decision_key_says_what_it_did(server: Server) -> None:
    item = await server.queue_unknown()
    app = tui(server)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: review(app).shown_id == item)
        listed = await server.get(f"/api/review/{item}")
        await pilot.press("y")
        said = [n.message for n in app._notifications]
        assert f"#{item}: labelled {listed['candidates'][0]['label']}" in said
        await until(pilot, lambda: _status(server, item, "corrected"))


async def test_w_makes_the_whole_picture_the_reference_instead_of_the_box(server: Server) -> None:
    import cv2

    from server.engine.vision.images import decode_image
    from tests.conftest import DEMO_REFS

    # A frame with a known flag small in a corner: the miss has a box.
    await server.put_threshold(1.99)
    frame = cv2.resize(decode_image(query(UNKNOWN_QUERY)), (960, 720))
    flag = cv2.resize(decode_image((DEMO_REFS / "Japan.png").read_bytes()), (300, 200))
    frame[40:240, 40:340] = flag
    _ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    obj = await server.identify(jpeg.tobytes(), source="corner")
    item = int(obj["review_id"])
    listed = await server.get(f"/api/review/{item}")
    assert listed["box"] is not None
    app = tui(server)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: review(app).shown_id == item)
        assert "label -> the" in str(app.screen.query_one("#item-info").render())
        await pilot.press("w")
        assert "whole picture" in str(app.screen.query_one("#item-info").render())
        await pilot.press("y")
        done = await until(pilot, lambda: _status(server, item, "corrected"))
    ref = await server.image(f"/api/references/{done['reference_id']}/image")
    picture = await server.image(f"/api/review/{item}/image")
    assert decode_image(ref).shape == decode_image(picture).shape
