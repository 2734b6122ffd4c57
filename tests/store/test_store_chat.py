"""Chat conversations in the database on SQLite and PostgreSQL: owned by one login, searched
by title and message text, truncated for a retry, deleted with their messages."""

from __future__ import annotations

from sqlalchemy import func, select

from irisgate.chat.attachments import Attachments
from irisgate.chat.conversations import Conversations, Message
from irisgate.chat.projects import Projects
from irisgate.store.database import Database
from irisgate.store.tables import chat_messages

BOB = "bob@example.com"
ALICE = "alice@example.com"


async def test_conversations_are_scoped_to_their_login(db: Database) -> None:
    store = Conversations(db)
    made = await store.create(BOB, title="Plans", model="openai/gpt-4o-mini", instructions="Hi")
    assert await store.get(ALICE, made["id"]) is None
    assert await store.update(ALICE, made["id"], {"title": "mine"}) is None
    assert await store.add_message(ALICE, made["id"], Message("user", "x")) is None
    assert await store.truncate(ALICE, made["id"], 0) is None
    assert await store.delete(ALICE, made["id"]) is False
    assert await store.list(ALICE) == []
    [listed] = await store.list(BOB)
    assert listed["title"] == "Plans" and listed["instructions"] == "Hi"


async def test_search_matches_titles_and_messages_literally(db: Database) -> None:
    store = Conversations(db)
    first = await store.create(BOB, title="Budget 100%", model="", instructions="")
    second = await store.create(BOB, title="Trip", model="", instructions="")
    await store.add_message(BOB, second["id"], Message("user", "Where is Kyoto_Station?"))
    assert [c["id"] for c in await store.list(BOB, "budget 100%")] == [first["id"]]
    assert [c["id"] for c in await store.list(BOB, "kyoto_station")] == [second["id"]]
    assert await store.list(BOB, "kyotoXstation") == []  # `_` is not a wildcard
    assert [c["id"] for c in await store.list(BOB, "0%")] == [first["id"]]  # `%` is literal
    assert await store.list(BOB, "1%0") == []
    # the conversation with the newest message comes first
    assert [c["id"] for c in await store.list(BOB)] == [second["id"], first["id"]]


async def test_truncate_and_delete_remove_messages(db: Database) -> None:
    store = Conversations(db)
    made = await store.create(BOB, title="t", model="", instructions="")
    ids = []
    for role, text in (("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2")):
        added = await store.add_message(BOB, made["id"], Message(role, text, outcome=""))
        assert added is not None
        ids.append(added["id"])
    assert await store.truncate(BOB, made["id"], ids[3]) == 1
    found = await store.get(BOB, made["id"])
    assert found is not None
    assert [m["content"] for m in found["messages"]] == ["q1", "a1", "q2"]
    assert await store.delete(BOB, made["id"]) is True
    assert await store.get(BOB, made["id"]) is None
    async with db.connect() as conn:
        left = (await conn.execute(select(func.count()).select_from(chat_messages))).scalar()
    assert left == 0


async def test_tools_effort_attachments_and_tool_rounds_are_kept(db: Database) -> None:
    store = Conversations(db)
    made = await store.create(
        BOB, title="t", model="", instructions="", tools=("docs_echo",), reasoning_effort="low"
    )
    assert made["tools"] == ["docs_echo"] and made["reasoning_effort"] == "low"
    image = {"name": "a.png", "media_type": "image/png", "data": "iVBORw0KGgo="}
    call = {"id": "call_1", "name": "docs_echo", "arguments": {"text": "hi"}}
    rounds = ({"text": "", "calls": [{**call, "output": "docs: hi", "is_error": False}]},)
    await store.add_message(BOB, made["id"], Message("user", "look", attachments=(image,)))
    await store.add_message(
        BOB, made["id"], Message("assistant", "done", tool_calls=rounds, reasoning="hmm")
    )
    updated = await store.update(BOB, made["id"], {"tools": (), "reasoning_effort": ""})
    assert updated is not None and updated["tools"] == [] and updated["reasoning_effort"] == ""
    settings = await store.settings(BOB, made["id"])
    assert settings is not None and settings["tools"] == [] and settings["project_id"] == ""
    assert await store.settings(ALICE, made["id"]) is None
    found = await store.get(BOB, made["id"])
    assert found is not None
    user, assistant = found["messages"]
    assert user["attachments"] == [image] and user["tool_calls"] == []
    assert assistant["tool_calls"] == list(rounds) and assistant["reasoning"] == "hmm"
    assert assistant["attachments"] == []


async def test_projects_count_their_conversations_and_release_them_when_deleted(
    db: Database,
) -> None:
    projects, store = Projects(db), Conversations(db)
    research = await projects.create(BOB, name="research", instructions="Cite.", tools=None)
    launch = await projects.create(BOB, name="Launch", instructions="", tools=("docs_echo",))
    await projects.create(ALICE, name="alice's", instructions="", tools=())
    for title in ("a", "b"):
        await store.create(BOB, title=title, model="", instructions="", project_id=research["id"])
    await store.create(BOB, title="loose", model="", instructions="")
    listed = await projects.list(BOB)
    assert [(p["name"], p["conversations"], p["tools"]) for p in listed] == [
        ("Launch", 0, ["docs_echo"]),
        ("research", 2, None),
    ]
    assert await projects.count(BOB) == 2
    assert await projects.get(ALICE, research["id"]) is None
    assert await projects.update(ALICE, research["id"], {"name": "x"}) is None
    assert await projects.delete(ALICE, research["id"]) is False
    changed = await projects.update(BOB, launch["id"], {"tools": None, "name": "Go"})
    assert changed is not None and (changed["tools"], changed["name"]) == (None, "Go")
    assert await projects.delete(BOB, research["id"]) is True
    assert await projects.get(BOB, research["id"]) is None
    assert sorted(c["project_id"] for c in await store.list(BOB)) == ["", "", ""]


async def test_attachments_are_kept_once_scoped_and_deleted_with_their_conversation(
    db: Database,
) -> None:
    store, images = Conversations(db), Attachments(db)
    made = await store.create(BOB, title="pics", model="", instructions="")
    other = await store.create(BOB, title="other", model="", instructions="")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # every byte value survives
    added = await images.add(BOB, made["id"], "p.png", "image/png", png)
    assert added["url"] == f"/api/chat/attachments/{added['id']}" and added["size"] == len(png)
    assert await images.data(BOB, [added["id"]]) == {added["id"]: ("image/png", png)}
    assert await images.data(ALICE, [added["id"]]) == {}
    refs = await images.references(BOB, made["id"], [added["id"], "a_missing"])
    assert list(refs) == [added["id"]] and refs[added["id"]]["name"] == "p.png"
    assert await images.references(BOB, other["id"], [added["id"]]) == {}
    assert await images.references(ALICE, made["id"], [added["id"]]) == {}
    assert (await images.used(BOB), await images.used(ALICE)) == (len(png), 0)
    assert await images.size(BOB, [added["id"], added["id"]]) == len(png)
    assert await store.delete(BOB, made["id"]) is True
    assert await images.data(BOB, [added["id"]]) == {}
    assert await images.used(BOB) == 0
