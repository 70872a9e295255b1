"""One model call through the framework: budget, retries, fallback chain, events, cost.

For each model in the chain (primary, then fallbacks): admit the call's worst-case cost
against the budget (:mod:`orchestration.admission`: it may wait for calls in flight),
call the provider with retries (each attempt under the configured timeout), price the
real usage, settle the reservation and emit a ``cost_update`` event billed to the current
agent.  When a model fails for good the next one is tried (``model_fallback`` event).

A request with a ``response_format`` has its answer validated
(:mod:`orchestration.structured`): one that does not match is shown its errors and asked
again (a ``model_retry`` event, then a call of its own, billed and recorded like any).
A streamed answer's tool calls come on its last chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .admission import Held, finish_call, finish_call_now, hold_call, release_call
from .completions import output_text
from .config import OrchestratorConfig
from .engine import guard
from .engine.run import RunContext, current_scope
from .errors import BudgetExceededError, LeaseLostError, StoreError, describe
from .events import EventType
from .llm import Completion, CompletionRequest, Provider
from .pricing import PriceTable
from .retry import RetryPolicy, retry_call
from .structured import structured_call
from .tokens import count_message_tokens_async, count_tokens_async
from .toolcalls import ToolCall
from .usage import Usage

__all__ = ["EXHAUSTED", "INTERRUPTED", "call_model"]

#: Attribute set on an error that already went through the call-level retries and
#: fallbacks, so the subtask-level retry does not multiply them.
EXHAUSTED = "orchestration_exhausted"


async def call_model(
    llm: Provider,
    request: CompletionRequest,
    models: Sequence[str | None],
    *,
    config: OrchestratorConfig,
    prices: PriceTable,
    default_policy: RetryPolicy | None = None,
    stream: bool = False,
) -> Completion:
    """Answer ``request`` with the first model of ``models`` that succeeds.

    Inside a run the run's retry policy applies (and every phase of a run has its own
    timeout); outside one, ``default_policy`` and ``config.timeout_seconds`` do.  A
    structured request (``response_format``) is answered until its answer matches
    (``completion.parsed``), or raises ``StructuredOutputError``.
    """
    if request.response_format is None:
        return await _call_chain(
            llm, request, models, config=config, prices=prices, default_policy=default_policy, stream=stream
        )

    async def attempt(asked: CompletionRequest) -> Completion:
        return await _call_chain(
            llm, asked, models, config=config, prices=prices, default_policy=default_policy, stream=stream
        )

    def on_mismatch(number: int, error: BaseException) -> None:
        scope = current_scope()
        if scope is not None:
            scope.run.emit(
                EventType.MODEL_RETRY,
                {"model": request.model, "attempt": number, "error": describe(error), "wait_seconds": 0.0},
                scope.agent_id,
            )

    return await structured_call(request, attempt, on_mismatch)


async def _call_chain(
    llm: Provider,
    request: CompletionRequest,
    models: Sequence[str | None],
    *,
    config: OrchestratorConfig,
    prices: PriceTable,
    default_policy: RetryPolicy | None,
    stream: bool,
) -> Completion:
    scope = current_scope()
    run = scope.run if scope is not None else None
    agent_id = scope.agent_id if scope is not None else None
    last_error: BaseException | None = None
    for index, model in enumerate(models):
        attempt_request = request if request.model == model else replace(request, model=model)
        policy = run.call_policy if run is not None else default_policy or RetryPolicy(max_retries=0)
        try:
            return await _call_one(
                llm,
                attempt_request,
                run,
                agent_id,
                config=config,
                prices=prices,
                policy=policy,
                stream=stream,
            )
        except (
            BudgetExceededError,
            asyncio.CancelledError,
            guard.GuardrailRejectedError,
            guard.RunPausedError,
            StoreError,
        ):
            raise  # a decision about the run, not a failure of this model: no fallback
        except Exception as error:
            last_error = error
            if index + 1 < len(models):
                if run is not None:
                    run.emit(
                        EventType.MODEL_FALLBACK,
                        {"from_model": model, "to_model": models[index + 1], "error": describe(error)},
                        agent_id,
                    )
                continue
            _mark_exhausted(error)
            raise
    raise AssertionError(f"no model to call (last error: {last_error!r})")  # models is never empty


async def _call_one(
    llm: Provider,
    request: CompletionRequest,
    run: RunContext | None,
    agent_id: str | None,
    *,
    config: OrchestratorConfig,
    prices: PriceTable,
    policy: RetryPolicy,
    stream: bool,
) -> Completion:
    fingerprint = request.fingerprint() if run is not None else ""
    if run is not None and run.recording is not None:
        recorded = run.recording.take(fingerprint)
        if recorded is not None:  # paid for before the interruption: its event is in the log already
            return recorded
    if run is not None:
        try:
            await run.log.writable()  # never pay for a call while the store cannot keep the run's events
        except StoreError:
            _abort(run)
            raise
    held = await hold_call(run, request, prices, agent_id) if run is not None else None

    def on_retry(number: int, error: BaseException, wait: float) -> None:
        if run is not None:
            run.emit(
                EventType.MODEL_RETRY,
                {"model": request.model, "attempt": number, "error": describe(error), "wait_seconds": wait},
                agent_id,
            )

    started_at = time.time()
    try:
        completion = await retry_call(
            lambda: _attempt(llm, request, run, agent_id, config, stream), policy, on_retry=on_retry
        )
    except BaseException as error:
        if run is not None:
            partial: Completion | None = getattr(error, _PARTIAL, None)
            if partial is not None:
                await _bill_partial(run, held, request, partial, agent_id, config, prices, llm, error)
            elif held is not None:
                release_call(run, held)
        raise
    return await finish_call(
        run,
        held,
        request,
        completion,
        agent_id,
        config=config,
        prices=prices,
        llm=llm,
        fingerprint=fingerprint,
        started_at=started_at,
    )


async def _attempt(
    llm: Provider,
    request: CompletionRequest,
    run: RunContext | None,
    agent_id: str | None,
    config: OrchestratorConfig,
    stream: bool,
) -> Completion:
    """One attempt; outside a run it carries its own timeout (inside, the phase's applies)."""
    if run is None:
        async with asyncio.timeout(config.timeout_seconds):
            return await _one_call(llm, request, run, agent_id, stream)
    if not stream:
        return await llm.complete(request)
    return await _one_call(llm, request, run, agent_id, stream)


async def _one_call(
    llm: Provider, request: CompletionRequest, run: RunContext | None, agent_id: str | None, stream: bool
) -> Completion:
    if stream and hasattr(llm, "stream"):
        return await _streamed(llm, request, run, agent_id)
    return await llm.complete(request)


#: A streamed answer reports ``agent_progress`` on its first chunk and every this many after.
_PROGRESS_EVERY = 10

#: The finish reason of a partial answer billed after its stream failed.
INTERRUPTED = "interrupted"

#: Attribute set on the error of a stream that failed after content arrived: the partial
#: answer (a :class:`Completion` without usage), which is billed.
_PARTIAL = "orchestration_partial_answer"


async def _streamed(
    llm: Provider, request: CompletionRequest, run: RunContext | None, agent_id: str | None
) -> Completion:
    parts: list[str] = []
    usage: Usage | None = None
    model: str | None = None
    finish: str | None = None
    rejected: tuple[str, ...] = ()
    calls: tuple[ToolCall, ...] = ()
    stream = llm.stream(request)  # type: ignore[attr-defined]
    chars = 0
    try:
        async for chunk in stream:
            if chunk.delta:
                parts.append(chunk.delta)
                chars += len(chunk.delta)
                if run is not None:
                    run.emit(EventType.TOKEN_DELTA, {"delta": chunk.delta}, agent_id)
                    if len(parts) % _PROGRESS_EVERY == 1:  # the first chunk, then every 10th
                        run.emit(EventType.AGENT_PROGRESS, {"chunks": len(parts), "chars": chars}, agent_id)
            usage = chunk.usage or usage
            model = chunk.model or model
            finish = chunk.finish_reason or finish
            rejected = chunk.rejected_usage or rejected
            if chunk.tool_calls:
                calls += chunk.tool_calls
    except BaseException as error:
        if parts:  # content was already delivered: a retry would bill and show it twice
            _set(error, "no_retry", True)
            # The vendor bills what it streamed, so the call is billed (an estimate of) it.
            partial = Completion(
                content="".join(parts),
                model=model or request.model,
                finish_reason=INTERRUPTED,
                provider=getattr(llm, "name", None),
            )
            _set(error, _PARTIAL, partial)
        raise
    content = "".join(parts)
    if usage is None:
        usage = Usage(
            input_tokens=(await count_message_tokens_async(request.counted_messages, request.model)).tokens,
            output_tokens=(await count_tokens_async(output_text(content, calls), request.model)).tokens,
            calls=1,
            estimated=True,
        )
    return Completion(
        content=content,
        usage=usage,
        model=model or request.model,
        finish_reason=finish,
        provider=getattr(llm, "name", None),
        rejected_usage=rejected,
        tool_calls=calls,
    )


async def _bill_partial(
    run: RunContext,
    held: Held | None,
    request: CompletionRequest,
    partial: Completion,
    agent_id: str | None,
    config: OrchestratorConfig,
    prices: PriceTable,
    llm: Provider,
    error: BaseException,
) -> None:
    """Bill a stream that failed after ``partial`` arrived: the prompt and the text received,
    counted offline and marked estimated, settle what the call held (not $0)."""
    try:
        prompt = held.prompt_tokens if held is not None else None
        if prompt is None:
            prompt = (await count_message_tokens_async(request.counted_messages, request.model)).tokens
        output = (await count_tokens_async(partial.content, partial.model or request.model)).tokens
    except BaseException:  # cancelled again while counting: give back what the call held
        if held is not None:
            release_call(run, held)
        raise
    usage = Usage(input_tokens=prompt, output_tokens=output, calls=1, estimated=True)
    finish_call_now(
        run,
        held,
        request,
        replace(partial, usage=usage),
        agent_id,
        config=config,
        prices=prices,
        llm=llm,
        guard_after=isinstance(error, Exception),  # a cancelled call cannot be rejected as well
    )


def _abort(run: RunContext) -> None:
    """Stop the whole run now (as a lost lease does): its store failed; ``_end`` says how."""
    if run.abort_reason is None:
        if isinstance(run.log.store_error, LeaseLostError):
            run.abort_reason = (
                "lost the run's lease to another process (its writes are refused), so this "
                "process stops; that process drives the run now"
            )
        else:
            run.abort_reason = "the run's store stopped accepting events, so no more model calls are made"
        run.cancel_requested = True
        if run.body is not None:
            run.body.cancel()


def _set(error: BaseException, name: str, value: Any) -> None:
    with contextlib.suppress(AttributeError):  # some built-in exceptions refuse attributes
        setattr(error, name, value)


def _mark_exhausted(error: BaseException) -> None:
    _set(error, EXHAUSTED, True)
