"""Search of a user's videos on real PostgreSQL: ranking, prefixes, typos, facets, paging."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.settings import Settings, SettingsError
from server import appkeys
from server.app import create_app
from server.search.serializers import highlight_segments
from server.search.text import search_text
from tests.conftest import User, register_and_login


async def add_video(
    app: web.Application,
    user: User,
    title: str | None,
    *,
    filename: str = "clip.mp4",
    description: str = "",
    tags: tuple[str, ...] = (),
    kind: str = "video",
    duration: float | None = 10.0,
    age_days: float = 0.0,
) -> str:
    """A row as an upload leaves it (no bytes: search reads only the row)."""
    video_id = uuid.uuid4()
    metadata = {"duration": duration} if duration is not None else {}
    async with app[appkeys.POOL].acquire() as conn:
        await conn.execute(
            """INSERT INTO videos (id, user_id, filename, storage_key, size, sha256, content_type,
                                   kind, metadata, created_at, expires_at, title, description, tags)
               VALUES ($1, $2, $3, $4, 1, 'x', 'video/mp4', $5, $6,
                       now() - $7::interval, now() + interval '1 day', $8, $9, $10)""",
            video_id,
            uuid.UUID(user.id),
            filename,
            f"k/{video_id}",
            kind,
            metadata,
            timedelta(days=age_days),
            title,
            description,
            list(tags),
        )
    return str(video_id)


async def search(client: TestClient[Any, Any], user: User, **params: Any) -> Any:
    resp = await client.get("/api/v1/videos", params=params, headers=user.headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def titles(body: Any) -> list[str]:
    return [item["title"] for item in body["items"]]


def has_trigrams(app: web.Application) -> bool:
    return app[appkeys.SEARCH].typo_tolerance


async def test_title_ranks_above_tags_above_description(
    client: TestClient[Any, Any], user: User
) -> None:
    app = client.app
    await add_video(app, user, "Lake at dawn", description="a river flows past the lake")
    await add_video(app, user, "Garden", tags=("river",))
    await add_video(app, user, "River crossing")
    await add_video(app, user, "Mountains")
    body = await search(client, user, q="river")
    assert titles(body) == ["River crossing", "Garden", "Lake at dawn"]
    assert body["sort"] == "relevance"
    scores = [item["search"]["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)


async def test_last_word_is_a_prefix_while_typing(client: TestClient[Any, Any], user: User) -> None:
    await add_video(client.app, user, "Summer vacation in Italy")
    await add_video(client.app, user, "Winter")
    assert titles(await search(client, user, q="summer vaca")) == ["Summer vacation in Italy"]
    assert titles(await search(client, user, q="sum")) == ["Summer vacation in Italy"]
    assert titles(await search(client, user, q="italy wint")) == []


async def test_file_name_is_the_title_until_one_is_set(
    client: TestClient[Any, Any], user: User
) -> None:
    await add_video(client.app, user, None, filename="beach_day-2024.mp4")
    assert titles(await search(client, user, q="beach")) == ["beach_day-2024.mp4"]


async def test_misspelt_title_is_found_with_pg_trgm(
    client: TestClient[Any, Any], user: User
) -> None:
    if not has_trigrams(client.app):
        pytest.skip("this PostgreSQL has no pg_trgm (the fallback is tested below)")
    await add_video(client.app, user, "Summer vacation in Italy")
    await add_video(client.app, user, "Birthday party")
    body = await search(client, user, q="vacaton")
    assert body["typo_tolerance"] is True
    assert titles(body) == ["Summer vacation in Italy"]
    assert titles(await search(client, user, q="birthdy")) == ["Birthday party"]


async def test_without_typo_tolerance_search_is_full_text_only(
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[..., Any],
) -> None:
    # The same code path as a PostgreSQL without pg_trgm (the embedded one).
    client = await aiohttp_client(create_app(make_settings(search_typo_tolerance=False)))
    user = await register_and_login(client)
    await add_video(client.app, user, "Summer vacation in Italy")
    body = await search(client, user, q="vacaton")
    assert body["typo_tolerance"] is False
    assert body["items"] == []
    assert titles(await search(client, user, q="vacation")) == ["Summer vacation in Italy"]
    resp = await client.get("/api/v1/videos/suggest", params={"q": "vac"}, headers=user.headers)
    assert [s["text"] for s in (await resp.json())["suggestions"]] == ["Summer vacation in Italy"]


async def test_highlights_are_segments_not_html(client: TestClient[Any, Any], user: User) -> None:
    await add_video(
        client.app,
        user,
        "<b>Dogs</b> playing",
        description="Two dogs in the park. " + "Filler words here. " * 20,
    )
    body = await search(client, user, q="dog")
    highlight = body["items"][0]["search"]["highlight"]
    assert {"text": "Dogs", "match": True} in highlight["title"]
    assert "".join(s["text"] for s in highlight["title"]) == "<b>Dogs</b> playing"
    assert any(s["match"] and s["text"] == "dogs" for s in highlight["description"])


def test_highlight_segments() -> None:
    assert highlight_segments("a \x02b\x03 c \x02d\x03") == [
        {"text": "a ", "match": False},
        {"text": "b", "match": True},
        {"text": " c ", "match": False},
        {"text": "d", "match": True},
    ]
    assert highlight_segments("no match") is None


def test_query_syntax_is_never_operators() -> None:
    text = search_text("a & b | !c :* (d')")
    assert text is not None
    assert text.tsquery == "a & b & c & d:*"
    assert search_text(" &|!() ") is None


async def test_filters_and_facet_counts(client: TestClient[Any, Any], user: User) -> None:
    app = client.app
    await add_video(app, user, "Trip one", tags=("travel", "sea"), duration=30, age_days=0.1)
    await add_video(app, user, "Trip two", tags=("travel",), duration=300, age_days=3)
    await add_video(app, user, "Trip three", tags=("travel",), duration=3000, age_days=40)
    await add_video(app, user, "Trip photo", kind="image", duration=None, age_days=400)
    body = await search(client, user, q="trip")
    facets = body["facets"]
    count = {name: {f["value"]: f["count"] for f in facets[name]} for name in facets}
    assert count["kind"] == {"video": 3, "image": 1}
    assert count["status"] == {"ready": 4}
    assert count["duration"] == {"short": 1, "medium": 1, "long": 1}
    assert count["uploaded"] == {"day": 1, "week": 2, "month": 2, "year": 3}
    assert count["tags"] == {"travel": 3, "sea": 1}

    assert titles(await search(client, user, q="trip", kind="image")) == ["Trip photo"]
    assert titles(await search(client, user, q="trip", duration="medium")) == ["Trip two"]
    assert sorted(titles(await search(client, user, uploaded="week"))) == ["Trip one", "Trip two"]
    both = await search(client, user, tag=["Travel", "sea"])
    assert titles(both) == ["Trip one"]
    # Tags filter together: their counts are what the filters leave.
    assert {f["value"]: f["count"] for f in both["facets"]["tags"]} == {"sea": 1, "travel": 1}

    # Every other facet counts with every filter but its own: choosing a kind
    # still shows the other kinds, and the other facets follow the choice.
    def counts(body: Any) -> dict[str, dict[str, int]]:
        facets = body["facets"]
        return {name: {f["value"]: f["count"] for f in facets[name]} for name in facets}

    image = counts(await search(client, user, q="trip", kind="image"))
    assert image["kind"] == {"video": 3, "image": 1}
    assert image["duration"] == {"short": 0, "medium": 0, "long": 0}
    assert image["tags"] == {}
    medium = counts(await search(client, user, q="trip", duration="medium"))
    assert medium["duration"] == {"short": 1, "medium": 1, "long": 1}
    assert medium["kind"] == {"video": 1}
    assert medium["uploaded"] == {"day": 0, "week": 1, "month": 1, "year": 1}
    both_filters = counts(await search(client, user, q="trip", duration="long", uploaded="week"))
    assert both_filters["duration"] == {"short": 1, "medium": 1, "long": 0}
    assert both_filters["uploaded"] == {"day": 0, "week": 0, "month": 0, "year": 1}


async def test_paging_by_relevance_and_by_date_is_complete(
    client: TestClient[Any, Any], user: User
) -> None:
    for i in range(7):
        await add_video(client.app, user, f"Concert part {i}", description="concert " * i)
    for sort in ("relevance", "date"):
        seen: list[str] = []
        params: dict[str, Any] = {"q": "concert", "sort": sort, "limit": 3}
        while True:
            body = await search(client, user, **params)
            seen += [item["id"] for item in body["items"]]
            assert ("facets" in body) == ("cursor" not in params)
            if body["next_cursor"] is None:
                break
            params["cursor"] = body["next_cursor"]
        assert len(seen) == len(set(seen)) == 7, sort
    # Newest first when sorted by date (part 6 was added last).
    dated = await search(client, user, q="concert", sort="date", limit=1)
    assert titles(dated) == ["Concert part 6"]
    # A relevance cursor is no date cursor.
    relevance = await search(client, user, q="concert", limit=1)
    resp = await client.get(
        "/api/v1/videos",
        params={"q": "concert", "sort": "date", "cursor": relevance["next_cursor"]},
        headers=user.headers,
    )
    assert resp.status == 400


async def test_plain_list_keeps_its_cursor(client: TestClient[Any, Any], user: User) -> None:
    for i in range(3):
        await add_video(client.app, user, f"v{i}")
    body = await search(client, user, limit=2)
    assert "facets" not in body and len(body["items"]) == 2
    rest = await search(client, user, limit=2, cursor=body["next_cursor"])
    assert len(rest["items"]) == 1


async def test_other_users_videos_are_never_found(client: TestClient[Any, Any], user: User) -> None:
    other = await register_and_login(client)
    await add_video(client.app, other, "Secret plans", tags=("secret",))
    body = await search(client, user, q="secret")
    assert body["items"] == [] and body["facets"]["tags"] == []
    resp = await client.get("/api/v1/videos/suggest", params={"q": "sec"}, headers=user.headers)
    assert (await resp.json())["suggestions"] == []


async def test_suggest_titles_and_tags(client: TestClient[Any, Any], user: User) -> None:
    await add_video(client.app, user, "Wedding dance", tags=("wedding", "family"))
    await add_video(client.app, user, "Wedding speech", tags=("wedding",))
    await add_video(client.app, user, "Walk")
    resp = await client.get("/api/v1/videos/suggest", params={"q": "wed"}, headers=user.headers)
    assert resp.status == 200
    found = (await resp.json())["suggestions"]
    assert sorted(s["text"] for s in found if s["kind"] == "title") == [
        "Wedding dance",
        "Wedding speech",
    ]
    assert [(s["text"], s["count"]) for s in found if s["kind"] == "tag"] == [("wedding", 2)]
    resp = await client.get("/api/v1/videos/suggest", params={"q": "%_"}, headers=user.headers)
    assert (await resp.json())["suggestions"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "x" * 201}, "q"),
        ({"kind": "movie"}, "kind"),
        ({"duration": "forever"}, "duration"),
        ({"uploaded": "decade"}, "uploaded"),
        ({"sort": "size"}, "sort"),
        ({"tag": "x" * 41}, "tag"),
        ({"q": "a", "cursor": "!!"}, "cursor"),
    ],
)
async def test_bad_parameters_are_400_naming_them(
    client: TestClient[Any, Any], user: User, params: dict[str, str], field: str
) -> None:
    resp = await client.get("/api/v1/videos", params=params, headers=user.headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == field


async def test_stop_words_and_symbols_alone_are_no_error(
    client: TestClient[Any, Any], user: User
) -> None:
    await add_video(client.app, user, "The end")
    for q in ("the", "a an the", "&|!", "'"):
        await search(client, user, q=q)  # 200, whatever it finds


async def test_search_needs_a_login(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/api/v1/videos", params={"q": "x"})).status == 401
    assert (await client.get("/api/v1/videos/suggest", params={"q": "x"})).status == 401


async def test_text_search_configuration_is_a_setting(
    make_settings: Callable[..., Settings], aiohttp_client: Callable[..., Any]
) -> None:
    # english stems "running" to "run"; simple keeps words as they are.
    english = await aiohttp_client(create_app(make_settings()))
    user = await register_and_login(english)
    await add_video(english.app, user, "Running")
    assert titles(await search(english, user, q="run")) == ["Running"]
    await english.close()

    simple = await aiohttp_client(
        create_app(make_settings(search_config="simple", search_typo_tolerance=False))
    )
    # Rows made under english were rebuilt with simple at start-up.
    body = await search(simple, user, q="runs", sort="date")
    assert body["items"] == []
    assert titles(await search(simple, user, q="running")) == ["Running"]
    await simple.close()
    # Back to the default for the rest of the run.
    await (await aiohttp_client(create_app(make_settings()))).close()


async def test_unknown_text_search_configuration_stops_start_up(
    make_settings: Callable[..., Settings],
) -> None:
    runner = web.AppRunner(create_app(make_settings(search_config="klingon")))
    try:
        with pytest.raises(SettingsError, match="FRAMEFLOW_SEARCH_CONFIG"):
            await runner.setup()
    finally:
        await runner.cleanup()
    with pytest.raises(SettingsError, match="FRAMEFLOW_SEARCH_CONFIG"):
        make_settings(search_config="english; drop table videos")


# A large library's matches are found through the owner word indexes ("words")
# or by scanning the user's rows newest first ("newest"): -1 and a billion as
# WORD_INDEX_MATCHES force each way, whatever the planner estimates.
LARGE_LIBRARY_WAYS = pytest.mark.parametrize("word_index_matches", [-1, 10**9])


@LARGE_LIBRARY_WAYS
async def test_large_library_path_finds_the_same(
    client: TestClient[Any, Any],
    user: User,
    monkeypatch: pytest.MonkeyPatch,
    word_index_matches: int,
) -> None:
    """Past SMALL_LIBRARY videos the word indexes are used: same answers."""
    from server.db import search as search_db

    monkeypatch.setattr(search_db, "WORD_INDEX_MATCHES", word_index_matches)

    app = client.app
    await add_video(app, user, "Lake at dawn", description="a river flows past the lake")
    await add_video(app, user, "Garden", tags=("river",))
    await add_video(app, user, "River crossing")
    small = await search(client, user, q="river")
    monkeypatch.setattr(search_db, "SMALL_LIBRARY", 0)
    large = await search(client, user, q="river")
    assert titles(large) == titles(small) == ["River crossing", "Garden", "Lake at dawn"]
    assert large["facets"] == small["facets"]
    # Filters (the page and the facets apart) and the second page, the same way.
    filtered = await search(client, user, q="river", tag="river")
    assert titles(filtered) == ["Garden"]
    first = await search(client, user, q="river", limit=2)
    rest = await search(client, user, q="river", limit=2, cursor=first["next_cursor"])
    assert titles(first) + titles(rest) == titles(small)
    if has_trigrams(app):
        assert titles(await search(client, user, q="crosing")) == ["River crossing"]
    resp = await client.get("/api/v1/videos/suggest", params={"q": "riv"}, headers=user.headers)
    found = (await resp.json())["suggestions"]
    assert next(s["text"] for s in found if s["kind"] == "title") == "River crossing"


@LARGE_LIBRARY_WAYS
async def test_a_large_library_ranks_and_counts_the_newest_matches(
    client: TestClient[Any, Any],
    user: User,
    monkeypatch: pytest.MonkeyPatch,
    word_index_matches: int,
) -> None:
    """Past SMALL_LIBRARY videos, relevance and facets cover the NEWEST_MATCHES newest
    matches (a common word there costs a second otherwise); `facets_complete` says so."""
    from server.db import search as search_db

    monkeypatch.setattr(search_db, "WORD_INDEX_MATCHES", word_index_matches)

    app = client.app
    # The best match is the oldest; eight newer, plainer matches; one other word.
    await add_video(app, user, "Sunset sunset sunset", description="sunset", age_days=30)
    for day in range(8):
        await add_video(app, user, f"Clip {day} at sunset", age_days=day)
    await add_video(app, user, "Harbour", age_days=1)
    whole = await search(client, user, q="sunset")
    assert titles(whole)[0] == "Sunset sunset sunset" and whole["facets_complete"]
    monkeypatch.setattr(search_db, "SMALL_LIBRARY", 0)
    monkeypatch.setattr(search_db, "NEWEST_MATCHES", 5)
    capped = await search(client, user, q="sunset")
    assert len(capped["items"]) == 5 and "Sunset sunset sunset" not in titles(capped)
    assert not capped["facets_complete"]
    assert {f["value"]: f["count"] for f in capped["facets"]["kind"]} == {"video": 5}
    # Fewer matches than the cap: complete.
    rare = await search(client, user, q="harbour")
    assert titles(rare) == ["Harbour"] and rare["facets_complete"]
    # Date order is not capped: it pages through every match.
    dated = await search(client, user, q="sunset", sort="date", limit=50)
    assert len(dated["items"]) == 9
