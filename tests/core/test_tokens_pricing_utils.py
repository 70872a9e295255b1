"""Offline token counts, the price table, retry decisions, and the seed's utilities."""

from __future__ import annotations

import pytest

from orchestration import (
    BadRequestError,
    BudgetExceededError,
    CompletionRequest,
    CostTracker,
    ModelPrice,
    PriceTable,
    ProgressTracker,
    RateLimitError,
    RetryPolicy,
    ScriptedProvider,
    Usage,
    calculate_progress,
    chunk_list,
    count_message_tokens,
    count_tokens,
    deduplicate_by_key,
    format_cost,
    format_duration,
    retry_async,
)
from orchestration.budget import Budget
from orchestration.tokens import counts_exactly, encoding_for_model


def test_token_counts_are_exact_and_offline() -> None:
    count = count_tokens("Hello world", "gpt-4o")
    assert count.exact and count.tokens == 2
    assert encoding_for_model("gpt-4") == "cl100k_base"
    assert encoding_for_model("openai:gpt-4o-mini") == "o200k_base"
    assert count_tokens("Ελληνικά 中文", "gpt-4").exact
    messages = count_message_tokens([{"role": "user", "content": "Hello world"}], "gpt-4o")
    assert messages.tokens == 2 + 3 + 1 + 3  # content + framing + role + reply priming


@pytest.mark.parametrize(
    ("model", "exact"),
    [
        ("gpt-4o-mini", True),
        ("openai:gpt-4.1", True),
        ("o3-mini", True),
        ("o1", True),
        ("text-embedding-3-small", True),
        ("claude-sonnet-4-5", False),
        ("anthropic:claude-haiku-4-5", False),
        ("llama3.2", False),
        ("gemma-3-270m-it", False),
        ("ollama:mistral", False),
        ("scripted", False),
        (None, False),
    ],
)
def test_only_openai_models_are_counted_exactly(model: str | None, exact: bool) -> None:
    assert counts_exactly(model) is exact
    assert count_tokens("Hello world", model).exact is exact
    assert count_message_tokens([{"role": "user", "content": "Hello"}], model).exact is exact


async def test_scripted_usage_is_estimated_unless_the_tokenizer_is_the_models_own() -> None:
    provider = ScriptedProvider("an answer")
    ask = [{"role": "user", "content": "hello"}]
    assert not (await provider.complete(CompletionRequest(ask, model="gpt-4o-mini"))).usage.estimated
    for model in ("claude-haiku-4-5", "llama3.2", None):
        assert (await provider.complete(CompletionRequest(ask, model=model))).usage.estimated, model
    words = ScriptedProvider("an answer", count_tokens=False)
    assert (await words.complete(CompletionRequest(ask, model="gpt-4o-mini"))).usage.estimated


def test_prices_match_dated_and_prefixed_ids_and_price_cached_tokens_apart() -> None:
    table = PriceTable()
    assert table.lookup("gpt-4o-mini-2024-07-18") == table.lookup("gpt-4o-mini")
    assert table.lookup("openai:gpt-4o") == ModelPrice(2.50, 10.0, 1.25)
    assert table.lookup("my-local-model") is None and table.cost("my-local-model", Usage()) is None
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=100_000)
    assert table.cost("gpt-4o", usage) == pytest.approx(0.6 * 2.5 + 0.4 * 1.25 + 0.1 * 10.0)
    custom = table.with_prices({"my-local-model": ModelPrice(1.0, 2.0)})
    assert custom.cost("my-local-model", Usage(input_tokens=10**6, output_tokens=10**6)) == pytest.approx(3.0)


def test_budget_reserves_before_and_settles_after() -> None:
    budget = Budget(cap=1.0)
    first = budget.reserve(0.6)
    with pytest.raises(BudgetExceededError, match=r"budget of \$1\.0000 reached"):
        budget.reserve(0.5)
    budget.settle(first, 0.2)
    assert budget.spent == pytest.approx(0.2) and budget.reserved == 0
    budget.reserve(0.5)
    assert not budget.exhausted
    budget.charge(0.9)
    assert budget.exhausted


def test_retry_policy_decisions() -> None:
    policy = RetryPolicy(max_retries=2, base_delay=1.0, max_delay=4.0, max_total_wait=10.0)
    assert policy.decide(1, RateLimitError("x", retry_after=3.0), 0.0) == 3.0
    assert policy.decide(1, BadRequestError("x"), 0.0) is None
    assert policy.decide(3, RateLimitError("x"), 0.0) is None  # out of retries
    assert policy.decide(1, RateLimitError("x", retry_after=9.0), 2.0) is None  # total wait cap
    waits = [policy.decide(2, TimeoutError(), 0.0) for _ in range(50)]
    assert all(w is not None and 0 <= w <= 2.0 for w in waits)
    assert policy.decide(1, ValueError("bug"), 0.0) is None


async def test_retry_async_decorator_retries_then_raises() -> None:
    calls = 0

    @retry_async(max_retries=3, base_delay=0.0)
    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("reset")
        return "ok"

    assert await flaky() == "ok" and calls == 3

    @retry_async(max_retries=3, base_delay=0.0)
    async def hopeless() -> None:
        nonlocal calls
        calls += 1
        raise BadRequestError("bad")

    calls = 0
    with pytest.raises(BadRequestError):
        await hopeless()
    assert calls == 1


def test_seed_utilities() -> None:
    tracker = ProgressTracker(total_tasks=10)
    tracker.update(completed=3)
    assert tracker.percentage == 30.0
    cost_tracker = CostTracker(max_cost=0.1, warning_threshold=0.04)
    cost_tracker.add_cost(0.05, model="gpt-4")
    assert format_cost(cost_tracker.total_cost) == "$0.0500"
    assert cost_tracker.warnings and cost_tracker.by_model == {"gpt-4": 0.05}
    with pytest.raises(BudgetExceededError):
        cost_tracker.add_cost(0.06)
    assert cost_tracker.total_cost == 0.05
    assert chunk_list([1, 2, 3, 4, 5], size=2) == [[1, 2], [3, 4], [5]]
    items = [{"id": 1, "v": "a"}, {"id": 1, "v": "b"}, {"id": 2, "v": "c"}]
    assert deduplicate_by_key(items, key="id") == [items[0], items[2]]
    assert calculate_progress(1, 4) == 25.0 and calculate_progress(0, 0) == 100.0
    assert format_duration(0.25) == "250ms" and format_duration(5.2) == "5.2s"
    assert format_duration(125) == "2m 5s" and format_duration(3725) == "1h 2m 5s"
    assert format_cost(1234.5) == "$1,234.50"
