"""The board and seed 000's twelve graph tools (``orchestration.graph.tools``).

Seed 000's quick start runs with its imports changed to ours and its ``GraphStorage``
replaced by a board, and gives the documented upstream view.  Boards are shared through
real stores: several boards (each its own store connection) claiming at once never
hand one task to two agents, on SQLite and Postgres.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestration import MemoryStore
from orchestration.graph.board import Board
from orchestration.graph.tools import (
    TOOLS,
    add_node,
    check_task,
    check_timeouts,
    edit_node,
    finish_task,
    get_task,
    history,
    list_nodes,
    open_board,
    refine_node,
    remove_node,
    rework,
    split_node,
)
from orchestration.stores import RunStore, open_store
from orchestration.stores.sqlite import SQLiteStore
from tests.stores.conftest import postgres_dsn  # noqa: F401  (a fixture)


@pytest.fixture
def board() -> Iterator[Board]:
    with open_board(MemoryStore(), "test") as opened:
        yield opened


def test_seed_000_quick_start_gives_the_documented_upstream_view() -> None:
    storage = open_board(MemoryStore(), "cascade")

    # Build a task graph — split horizontally for parallelism
    add_node(storage, {"node_id": "analyze"})
    add_node(
        storage,
        {
            "node_id": "design",
            "dependencies": ["analyze"],
            "expectations": [
                {
                    "node_id": "analyze",
                    "expectation": "Feature requirements and constraints",
                    "promise": "Deliver prioritized feature list",
                }
            ],
        },
    )

    # Agent claims a task — critical path first
    result = get_task(storage, {"agent_id": "agent-001"})

    # Complete with context that flows to downstream agents
    finish_task(
        storage,
        {
            "task_id": "analyze",
            "success": True,
            "summary": "Requirements: JWT auth + REST API",
            "critical": {"auth_type": "JWT", "endpoints": ["/users", "/posts"]},
        },
    )

    assert result["task"]["node_id"] == "analyze"
    seen = get_task(storage, {"agent_id": "agent-002"})["task"]
    assert seen["node_id"] == "design"
    [entry] = seen["upstream"]  # one entry per upstream source, nothing merged
    assert {k: entry[k] for k in ("node_id", "state", "distance", "expectation", "promise", "delivered")} == {
        "node_id": "analyze",
        "state": "COMPLETED",
        "distance": 1,
        "expectation": "Feature requirements and constraints",
        "promise": "Deliver prioritized feature list",
        "delivered": {
            "summary": "Requirements: JWT auth + REST API",
            "critical": {"auth_type": "JWT", "endpoints": ["/users", "/posts"]},
        },
    }
    storage.close()


def test_get_task_takes_the_critical_path_first(board: Board) -> None:
    add_node(board, {"node_id": "leaf"})  # nothing depends on it
    add_node(board, {"node_id": "root"})
    add_node(board, {"node_id": "mid", "dependencies": ["root"]})
    add_node(board, {"node_id": "end", "dependencies": ["mid"]})
    claimed = [get_task(board, {"agent_id": f"a{i}"})["task"]["node_id"] for i in range(2)]
    assert claimed == ["root", "leaf"]  # root heads the longest chain


def test_each_agent_sees_every_ancestor_separately_with_distance(board: Board) -> None:
    add_node(board, {"node_id": "facts"})
    add_node(board, {"node_id": "figures"})
    add_node(board, {"node_id": "draft", "dependencies": ["facts", "figures"]})
    add_node(board, {"node_id": "edit", "dependencies": ["draft"]})
    for node, critical in (("facts", {"source": "survey"}), ("figures", {"n": 3})):
        task = get_task(board, {"agent_id": "w"})["task"]
        finish_task(
            board, {"task_id": task["node_id"], "agent_id": "w", "critical": critical, "summary": node}
        )
    draft = get_task(board, {"agent_id": "w"})["task"]
    assert [u["node_id"] for u in draft["upstream"]] == ["facts", "figures"]
    finish_task(board, {"task_id": "draft", "agent_id": "w", "output": "the draft", "summary": "drafted"})
    edit = get_task(board, {"agent_id": "w"})["task"]
    by_node = {u["node_id"]: u for u in edit["upstream"]}
    assert by_node["draft"]["distance"] == 1 and by_node["draft"]["delivered"]["output"] == "the draft"
    assert by_node["facts"]["distance"] == 2 and by_node["facts"]["delivered"]["critical"] == {
        "source": "survey"
    }
    assert by_node["facts"]["delivered"]["summary"] == "facts"  # summaries reach two hops


def test_only_the_claimant_may_finish_and_only_a_claimed_task(board: Board) -> None:
    add_node(board, {"node_id": "t"})
    refused = finish_task(board, {"task_id": "t", "agent_id": "a"})
    assert refused == {
        "ok": False,
        "error": "finish_task: task 't' is READY, not claimed; claim it with get_task",
    }
    get_task(board, {"agent_id": "a"})
    stolen = finish_task(board, {"task_id": "t", "agent_id": "b", "output": 1})
    assert stolen["ok"] is False and "claimed by 'a', not 'b'" in stolen["error"]
    assert finish_task(board, {"task_id": "t", "agent_id": "a", "output": 1})["state"] == "COMPLETED"


def test_a_lapsed_lease_is_requeued_and_the_old_agent_is_told_to_stop() -> None:
    now = [1000.0]
    store = MemoryStore()
    board = Board(store, "leases", clock=lambda: now[0])
    add_node(board, {"node_id": "slow"})
    first = get_task(board, {"agent_id": "a", "lease_seconds": 30})["task"]
    assert first["lease_until"] == 1030.0
    assert check_timeouts(board, {}) == {"ok": True, "requeued": []}
    now[0] = 1031.0
    assert check_timeouts(board, {}) == {"ok": True, "requeued": ["slow"]}
    assert check_task(board, {"task_id": "slow", "agent_id": "a"})["proceed"] is False
    second = get_task(board, {"agent_id": "b"})["task"]
    assert (second["node_id"], second["visit"]) == ("slow", 1)
    assert check_task(board, {"task_id": "slow", "agent_id": "a"})["proceed"] is False
    assert check_task(board, {"task_id": "slow", "agent_id": "b"})["proceed"] is True
    assert finish_task(board, {"task_id": "slow", "agent_id": "a"})["ok"] is False
    assert finish_task(board, {"task_id": "slow", "agent_id": "b", "output": "done"})["ok"] is True
    board.close()


def test_running_tasks_are_protected_from_removal_and_splitting(board: Board) -> None:
    add_node(board, {"node_id": "plan"})
    add_node(board, {"node_id": "work", "dependencies": ["plan"]})
    add_node(board, {"node_id": "report", "dependencies": ["work"]})
    get_task(board, {"agent_id": "a"})
    finish_task(board, {"task_id": "plan", "agent_id": "a"})
    get_task(board, {"agent_id": "a"})  # claims "work": ACTIVE
    # Seed 000's bug: cascade-removing an ancestor deleted an ACTIVE grandchild.
    refused = remove_node(board, {"node_id": "plan", "cascade": True, "reason": "replan"})
    assert refused["ok"] is False and "'work'" in refused["error"]
    assert split_node(board, {"node_id": "work", "parts": [{"node_id": "w1"}]})["ok"] is False
    assert [n["node_id"] for n in list_nodes(board, {})["nodes"]] == ["plan", "work", "report"]
    assert list_nodes(board, {"state": "active"})["nodes"][0]["agent_id"] == "a"


def test_structure_tools_change_pending_nodes_and_record_reasons(board: Board) -> None:
    add_node(board, {"node_id": "a"})
    add_node(board, {"node_id": "b"})
    add_node(board, {"node_id": "c", "dependencies": ["a"]})
    assert refine_node(board, {"node_id": "c", "depends_on": "b", "expectation": "numbers"})[
        "dependencies"
    ] == [
        "a",
        "b",
    ]
    assert edit_node(board, {"node_id": "c", "description": "combine", "reason": "clearer"})[
        "description"
    ] == ("combine")
    split = split_node(
        board, {"node_id": "b", "parts": [{"node_id": "b1"}, {"node_id": "b2"}], "reason": "halve"}
    )
    assert split == {"ok": True, "parts": ["b1", "b2"], "join": "b.join"}
    assert remove_node(board, {"node_id": "c", "reason": "not needed"}) == {"ok": True, "removed": ["c"]}
    reasons = [e.get("reason") for e in history(board, {})["events"] if e.get("reason")]
    assert reasons == ["clearer", "halve", "not needed"]


def test_rework_inserts_a_fix_and_the_consumer_runs_again(board: Board) -> None:
    add_node(board, {"node_id": "write"})
    add_node(board, {"node_id": "review", "dependencies": ["write"]})
    for _ in range(2):
        task = get_task(board, {"agent_id": "w"})["task"]
        finish_task(board, {"task_id": task["node_id"], "agent_id": "w", "output": task["node_id"]})
    fixed = rework(board, {"source": "write", "consumer": "review", "node_id": "fix", "reason": "typos"})
    assert fixed["ok"] is True
    assert get_task(board, {"agent_id": "w"})["task"]["node_id"] == "fix"
    finish_task(board, {"task_id": "fix", "agent_id": "w", "output": "fixed"})
    again = get_task(board, {"agent_id": "w"})["task"]
    assert (again["node_id"], again["visit"]) == ("review", 2)


def test_bad_arguments_get_one_line_errors_and_change_nothing(board: Board) -> None:
    assert add_node(board, {"node": "x"}) == {
        "ok": False,
        "error": "add_node: bad arguments: Object contains unknown field `node`",
    }
    missing = add_node(board, {"node_id": "x", "dependencies": ["nope"]})
    assert missing["ok"] is False and "unknown node 'nope'" in missing["error"]
    assert get_task(board, {"agent_id": "a"}) == {
        "ok": True,
        "task": None,
        "reason": "the board is empty: add nodes first",
    }
    assert list_nodes(board, {})["nodes"] == []
    assert "\n" not in missing["error"]


def test_every_tool_has_a_json_schema_a_model_can_use() -> None:
    names = [tool.schema["name"] for tool in TOOLS]  # type: ignore[attr-defined]
    assert names == [
        "add_node",
        "remove_node",
        "split_node",
        "refine_node",
        "edit_node",
        "get_task",
        "finish_task",
        "rework",
        "check_task",
        "check_timeouts",
        "list_nodes",
        "history",
    ]
    add = TOOLS[0].schema["parameters"]  # type: ignore[attr-defined]
    assert add["type"] == "object" and add["required"] == ["node_id"]
    assert add["properties"]["expectations"]["items"]["required"] == ["node_id"]
    assert "$ref" not in repr(add) and all(tool.schema["description"] for tool in TOOLS)  # type: ignore[attr-defined]


def _sqlite(tmp_path: Path) -> Callable[[], RunStore]:
    return lambda: SQLiteStore(tmp_path / "board.db")


@pytest.fixture(params=["sqlite", "postgres"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], RunStore]:
    """A factory of independent connections to one store."""
    if request.param == "sqlite":
        return _sqlite(tmp_path)
    dsn = request.getfixturevalue("postgres_dsn")
    return lambda: open_store(dsn)


def test_a_board_survives_reopening(tmp_path: Path) -> None:
    with open_board(SQLiteStore(tmp_path / "b.db"), "kept") as first:
        add_node(first, {"node_id": "a"})
        get_task(first, {"agent_id": "x"})
    with open_board(SQLiteStore(tmp_path / "b.db"), "kept") as again:
        assert list_nodes(again, {})["nodes"][0]["state"] == "ACTIVE"
        assert finish_task(again, {"task_id": "a", "agent_id": "x"})["state"] == "COMPLETED"


def test_agents_racing_on_shared_boards_never_get_the_same_task(shared_store: Callable[[], RunStore]) -> None:
    with open_board(shared_store(), "race") as planner:
        for i in range(24):
            add_node(planner, {"node_id": f"t{i}"})
    claimed: list[tuple[str, str]] = []
    errors: list[Any] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def agent(name: str) -> None:
        with open_board(shared_store(), "race") as mine:  # its own connection
            start.wait()
            while True:
                got = get_task(mine, {"agent_id": name})
                if not got["ok"]:
                    errors.append(got)
                    return
                if got["task"] is None:
                    return
                with lock:
                    claimed.append((got["task"]["node_id"], name))
                finish_task(mine, {"task_id": got["task"]["node_id"], "agent_id": name})

    threads = [threading.Thread(target=agent, args=(f"agent-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(node for node, _ in claimed) == sorted(f"t{i}" for i in range(24))  # each exactly once
    with open_board(shared_store(), "race") as check:
        assert {n["state"] for n in list_nodes(check, {})["nodes"]} == {"COMPLETED"}
