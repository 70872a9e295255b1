"""The vendor-neutral tool types: specs, calls, output schemas, and the request and
completion fields that carry them (checked at the edge, round-tripped through JSON)."""

from __future__ import annotations

import json

import pytest

from orchestration import (
    Completion,
    CompletionRequest,
    ConfigError,
    OutputSchema,
    StructuredOutputError,
    ToolArgumentsError,
    ToolCall,
    ToolCallError,
    ToolSpec,
    Usage,
)
from orchestration.text import valid_text

SEARCH = ToolSpec(
    "search",
    "Search the web.",
    {
        "type": "object",
        "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
        "required": ["query"],
    },
)


def test_tool_specs_are_checked_where_they_are_made() -> None:
    with pytest.raises(ConfigError, match="tool name 'web search' is not allowed"):
        ToolSpec("web search")
    with pytest.raises(ConfigError, match="parameters must be a JSON schema of an object"):
        ToolSpec("search", parameters={"type": "string"})
    with pytest.raises(ConfigError, match="must be JSON"):
        ToolSpec("search", parameters={"type": "object", "default": {1, 2}})
    with pytest.raises(ConfigError, match="not a valid JSON schema"):
        ToolSpec("search", parameters={"type": "object", "properties": {"q": {"type": "strin"}}}).validate({})


def test_tool_specs_read_every_vendor_shape() -> None:
    openai = {"type": "function", "function": SEARCH.to_dict()}
    anthropic = {"name": "search", "description": "Search the web.", "input_schema": dict(SEARCH.parameters)}
    assert ToolSpec.from_dict(openai) == ToolSpec.from_dict(anthropic) == SEARCH
    assert ToolSpec.from_dict(json.loads(json.dumps(SEARCH.to_dict()))) == SEARCH
    assert SEARCH.to_openai() == openai


def test_a_call_parses_its_arguments_once_and_validates_against_the_schema() -> None:
    call = ToolCall("search", '{"query": "llm", "limit": 0}', id="call_1")
    assert call.arguments == {"query": "llm", "limit": 0} and call.problem is None
    with pytest.raises(ToolArgumentsError) as caught:
        call.checked_arguments(SEARCH)
    assert caught.value.errors == ["$.limit: 0 is less than the minimum of 1"]
    assert isinstance(caught.value, ToolCallError)
    assert ToolCall("search", {"query": "llm"}).checked_arguments(SEARCH) == {"query": "llm"}
    assert ToolCall("search", "").arguments == {}  # some servers send no text for no arguments


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"query": "llm"', "not valid JSON (Expecting ',' delimiter at character 15)"),
        ("[1, 2]", "a JSON list, not an object"),
        ('"just text"', "a JSON str, not an object"),
        ("{'query': 'llm'}", "not valid JSON"),
    ],
)
def test_malformed_arguments_are_never_read_as_something_else(text: str, problem: str) -> None:
    call = ToolCall("search", text, id="c")
    assert call.problem is not None and problem in call.problem
    assert call.arguments_json == text  # kept as the model wrote it, to show it back
    with pytest.raises(ToolArgumentsError, match="tool call 'search' \\(id c\\)"):
        _ = call.arguments
    with pytest.raises(ToolArgumentsError):
        call.checked_arguments(SEARCH)


def test_lone_surrogates_in_arguments_become_valid_text() -> None:
    escaped = ToolCall("search", '{"query": "a\\ud800b", "\\udfff": 1}')
    assert escaped.arguments == {"query": "a\ufffdb", "\ufffd": 1}
    raw = ToolCall("search", {"query": "x\ud800"})  # an SDK object already decoded the escape
    assert raw.arguments == {"query": "x\ufffd"} and valid_text(raw.arguments_json) is raw.arguments_json
    raw.arguments_json.encode("utf-8")


def test_calls_round_trip_through_json_malformed_ones_too() -> None:
    for call in (ToolCall("search", {"query": "é"}, id="a"), ToolCall("search", '{"query":', id="b")):
        again = ToolCall.from_dict(json.loads(json.dumps(call.to_dict())))
        assert again == call and again.problem == call.problem
    openai_shape = {
        "id": "c",
        "type": "function",
        "function": {"name": "search", "arguments": '{"query": "q"}'},
    }
    assert ToolCall.from_dict(openai_shape).arguments == {"query": "q"}
    assert ToolCall("search", {"query": "q"}, id="c").to_message() == openai_shape


def test_requests_check_their_tool_fields() -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(ConfigError, match="'search' offered twice"):
        CompletionRequest(messages, tools=[SEARCH, SEARCH])
    with pytest.raises(ConfigError, match=r"tool_choice 'lookup' is neither .* \(offered: 'search'\)"):
        CompletionRequest(messages, tools=[SEARCH], tool_choice="lookup")
    with pytest.raises(ConfigError, match="'required' needs tools"):
        CompletionRequest(messages, tool_choice="required")
    with pytest.raises(ConfigError, match="response_format is named 'search', as a tool is"):
        CompletionRequest(
            messages, tools=[SEARCH], response_format=OutputSchema({"type": "object"}, name="search")
        )
    with pytest.raises(ConfigError, match="retries must be a whole number"):
        OutputSchema({"type": "object"}, retries=-1)
    as_dicts = CompletionRequest(messages, tools=[SEARCH.to_openai()], response_format={"type": "object"})
    assert as_dicts.tools == (SEARCH,) and as_dicts.response_format == OutputSchema({"type": "object"})


def test_typed_tool_options_become_the_fields_and_raw_ones_stay_options() -> None:
    messages = [{"role": "user", "content": "hi"}]
    schema = OutputSchema({"type": "object"})
    # call_llm(prompt, tools=..., tool_choice=..., response_format=...) passes them as options
    lifted = CompletionRequest(
        messages, options={"tools": [SEARCH], "tool_choice": "search", "response_format": schema, "seed": 1}
    )
    explicit = CompletionRequest(
        messages, options={"seed": 1}, tools=[SEARCH], tool_choice="search", response_format=schema
    )
    assert lifted == explicit and lifted.fingerprint() == explicit.fingerprint()
    raw = CompletionRequest(
        messages, options={"tools": [SEARCH.to_openai()], "response_format": {"type": "json_object"}}
    )
    assert raw.tools == () and raw.response_format is None and "tools" in raw.options


def test_request_round_trip_and_fingerprints() -> None:
    messages = [{"role": "user", "content": "hi"}]
    plain = CompletionRequest(messages, model="m")
    full = CompletionRequest(
        messages,
        model="m",
        tools=[SEARCH],
        tool_choice="required",
        parallel_tool_calls=False,
        response_format=OutputSchema({"type": "object"}, name="answer", retries=1),
    )
    for req in (plain, full):
        again = CompletionRequest.from_dict(json.loads(json.dumps(req.to_dict())))
        assert again == req and again.fingerprint() == req.fingerprint()
    assert "tools" not in plain.to_dict()  # requests without tools look as they always did
    assert plain.fingerprint() == "255c9f3a0beed55fe430bd84db9a1b3c"  # as recorded by earlier versions
    assert (
        len(
            {
                plain.fingerprint(),
                full.fingerprint(),
                CompletionRequest(messages, model="m", tools=[SEARCH]).fingerprint(),
            }
        )
        == 3
    )


def test_tools_count_in_the_prompt() -> None:
    messages = [{"role": "user", "content": "hi"}]
    assert CompletionRequest(messages).counted_messages is messages
    counted = CompletionRequest(messages, tools=[SEARCH]).counted_messages
    assert counted[:1] == messages and "Search the web." in counted[1]["content"]


def test_completions_carry_calls_and_round_trip() -> None:
    calls = (ToolCall("search", {"query": "a"}, id="1"), ToolCall("search", "{oops", id="2"))
    completion = Completion("Looking.", Usage(10, 5, calls=1), "m", "tool_calls", tool_calls=calls)
    assert Completion.from_dict(json.loads(json.dumps(completion.to_dict()))) == completion
    assert completion.message() == {
        "role": "assistant",
        "content": "Looking.",
        "tool_calls": [c.to_message() for c in calls],
    }
    assert Completion("", tool_calls=calls[:1]).message()["content"] is None
    assert Completion("hi").message() == {"role": "assistant", "content": "hi"}
    listed = Completion("x", tool_calls=list(calls))  # type: ignore[arg-type]
    assert listed.tool_calls == calls
    parsed = Completion('{"a": 1}', parsed={"a": 1})
    assert Completion.from_dict(parsed.to_dict()).parsed == {"a": 1}


def test_results_answer_their_call() -> None:
    call = ToolCall("search", {"query": "a"}, id="call_9")
    assert call.result({"hits": 2}) == {
        "role": "tool",
        "tool_call_id": "call_9",
        "name": "search",
        "content": '{"hits": 2}',
    }
    assert call.result("boom", error=True)["is_error"] is True


@pytest.mark.parametrize(
    ("text", "value"),
    [('{"a": 1}', {"a": 1}), ('```json\n{"a": 1}\n```', {"a": 1}), ("  [1]  ", [1])],
)
def test_output_schema_parses_fenced_or_bare_json(text: str, value: object) -> None:
    assert OutputSchema({}).parse(text) == value


def test_output_schema_says_what_is_wrong() -> None:
    schema = OutputSchema({"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}})
    with pytest.raises(StructuredOutputError, match="not valid JSON") as caught:
        schema.parse("a is 1")
    assert caught.value.content == "a is 1"
    with pytest.raises(StructuredOutputError, match="empty"):
        schema.parse("  ")
    with pytest.raises(StructuredOutputError) as caught:
        schema.parse('{"a": "1", "b": 2}')
    assert caught.value.errors == ["$.a: '1' is not of type 'integer'"]
    assert OutputSchema.from_dict(json.loads(json.dumps(schema.to_dict()))) == schema
