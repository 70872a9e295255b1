"""``self.provider``: a metered view of the user's provider object.

The seed README's custom orchestrator calls ``self.provider.complete(messages=...)``
directly.  Those calls are budgeted and billed exactly like ``call_llm``: each one is
admitted against the run's budget and guardrails before it is made, settled to its real
usage after, and billed to the agent whose hook is running (a ``cost_update`` event).
The view returns what the user's object returns (an answer that is a string made valid
UTF-8, as every answer is where it enters), and every other attribute is the object's own.

- ``await self.provider.complete(...)`` on an async provider waits for admission like
  ``call_llm`` does.
- A synchronous ``self.provider.complete(...)`` inside ``async def execute_subtask``
  blocks the event loop, so subtasks run one at a time; it is still metered, and the
  first time it blocks the loop for more than 100 ms the run says, once, in a ``warning``
  event and the log, what to do instead.
- The same call through ``await asyncio.to_thread(self.provider.complete, ...)`` does
  its bookkeeping on the run's event loop and so waits for admission too.

Outside a run, calls go straight to the object.  Without a provider the view (and the
run's model calls) raise a one-line :class:`~orchestration.errors.ConfigError` when a
model call is made, not when the orchestrator is built.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .admission import finish_call, finish_call_now, hold_call, hold_call_now, release_call
from .engine.blocking import BLOCKING_SECONDS, report_blocking
from .engine.run import RunContext, current_scope
from .errors import ConfigError, MalformedResponseError
from .llm import Completion, CompletionRequest, Provider, _text_of, _usage_of, is_native_provider

if TYPE_CHECKING:
    from .config import OrchestratorConfig
    from .pricing import PriceTable

__all__ = ["NO_PROVIDER", "MeteredProvider", "MissingProvider"]


class Meters(Protocol):
    """What metering needs of its owner (an orchestrator): its settings and price table."""

    config: OrchestratorConfig
    prices: PriceTable


T = TypeVar("T")

NO_PROVIDER = (
    "this orchestrator has no provider, and a model call was made: pass one when building it, "
    "e.g. MyOrchestrator(config, provider=ScriptedProvider())"
)

_METERED = ("complete", "chat")


class MissingProvider(Provider):
    """Stands in for a provider that was not given: fails the first model call, clearly."""

    name = "none"

    async def complete(self, request: CompletionRequest) -> Completion:
        """Always raises :class:`ConfigError` (there is no provider to call)."""
        raise ConfigError(NO_PROVIDER)


class MeteredProvider:
    """The user's provider object, with ``complete`` and ``chat`` budgeted and billed."""

    __slots__ = ("_orch", "_target")

    def __init__(self, orch: Meters, target: Any) -> None:
        self._orch = orch
        self._target = target

    @property
    def unwrapped(self) -> Any:
        """The provider object itself (calls on it are not metered)."""
        return self._target

    def __getattr__(self, name: str) -> Any:
        if name in self.__slots__:  # not set yet (e.g. while copying): never recurse
            raise AttributeError(name)
        target = self._target
        if target is None:
            if name in _METERED:
                raise ConfigError(NO_PROVIDER)
            raise AttributeError(name)
        attribute = getattr(target, name)
        if name in _METERED and callable(attribute):
            return self._metered(name, attribute)
        return attribute

    def __repr__(self) -> str:
        return f"<metered {type(self._target).__name__}>"

    def _metered(self, name: str, method: Any) -> Any:
        if inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def metered_async(*args: Any, **kwargs: Any) -> Any:
                return await self._call_async(name, method, args, kwargs)

            return metered_async

        @functools.wraps(method)
        def metered(*args: Any, **kwargs: Any) -> Any:
            return self._call_sync(name, method, args, kwargs)

        return metered

    async def _call_async(self, name: str, method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        scope = current_scope()
        if scope is None:
            return await method(*args, **kwargs)
        run, agent_id = scope.run, scope.agent_id
        request, call = self._request(name, method, args, kwargs, scope.model)
        orch = self._orch
        held = await hold_call(run, request, orch.prices, agent_id)
        try:
            raw = await call()
            completion = (
                raw if isinstance(raw, Completion) else await asyncio.to_thread(_completion_of, raw, request)
            )
        except BaseException:
            if held is not None:
                release_call(run, held)
            raise
        await finish_call(
            run, held, request, completion, agent_id, config=orch.config, prices=orch.prices, llm=self._target
        )
        return _answer(raw, completion)

    def _call_sync(self, name: str, method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        scope = current_scope()
        if scope is None:
            return method(*args, **kwargs)
        run, agent_id = scope.run, scope.agent_id
        request, call = self._request(name, method, args, kwargs, scope.model)
        orch = self._orch
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a worker thread (asyncio.to_thread): bookkeeping runs on the run's loop
            return self._call_from_thread(run, agent_id, request, call)
        held = hold_call_now(run, request, orch.prices, agent_id)
        started = time.perf_counter()
        try:
            raw = call()
            blocked = time.perf_counter() - started
            completion = raw if isinstance(raw, Completion) else _completion_of(raw, request)
        except BaseException:
            if held is not None:
                release_call(run, held)
            raise
        if blocked > BLOCKING_SECONDS:
            _report_blocking(run, agent_id, name, blocked)
        finish_call_now(
            run,
            held,
            request,
            completion,
            agent_id,
            config=orch.config,
            prices=orch.prices,
            llm=self._target,
            guard_after=True,
        )
        return _answer(raw, completion)

    def _call_from_thread(self, run: RunContext, agent_id: str, request: CompletionRequest, call: Any) -> Any:
        if run.body is None:
            raise RuntimeError("the run's event loop is not known (the run has not started)")
        loop = run.body.get_loop()
        orch = self._orch
        held = _on_loop(hold_call(run, request, orch.prices, agent_id), loop)
        try:
            raw = call()
            completion = raw if isinstance(raw, Completion) else _completion_of(raw, request)
        except BaseException:
            if held is not None:
                loop.call_soon_threadsafe(release_call, run, held)
            raise
        _on_loop(
            finish_call(
                run,
                held,
                request,
                completion,
                agent_id,
                config=orch.config,
                prices=orch.prices,
                llm=self._target,
            ),
            loop,
        )
        return _answer(raw, completion)

    def _request(
        self, name: str, method: Any, args: tuple[Any, ...], kwargs: dict[str, Any], scope_model: str | None
    ) -> tuple[CompletionRequest, Any]:
        """What the call asks for (to price its worst case), and the call itself."""
        config = self._orch.config
        given = kwargs.get("request", args[0] if args else None)
        fallback_model = scope_model or config.primary_model or getattr(self._target, "model", None)
        if isinstance(given, CompletionRequest):
            request = given
            if request.model is None and fallback_model:
                request = CompletionRequest(
                    request.messages, fallback_model, request.max_tokens, request.temperature, request.stop
                )
            return _with_max_tokens(request, config.max_tokens), lambda: method(*args, **kwargs)
        if name == "chat":
            system = kwargs.get("system_prompt", args[0] if args else "")
            user = kwargs.get("user_prompt", args[1] if len(args) > 1 else "")
            messages: list[Mapping[str, Any]] = [
                {"role": "system", "content": str(system or "")},
                {"role": "user", "content": str(user or "")},
            ]
        else:
            raw_messages = kwargs.get("messages", given)
            messages = [dict(m) for m in raw_messages] if isinstance(raw_messages, Sequence) else []
        request = CompletionRequest(
            messages=messages,
            model=kwargs.get("model") or fallback_model,
            max_tokens=kwargs.get("max_tokens") or config.max_tokens,
            temperature=kwargs.get("temperature"),
        )
        if name == "complete" and is_native_provider(self._target):
            # the seed's call shape on a native provider: send it as a request
            return request, lambda: method(request)
        return request, lambda: method(*args, **kwargs)


def _with_max_tokens(request: CompletionRequest, default: int) -> CompletionRequest:
    if request.max_tokens:
        return request
    return CompletionRequest(request.messages, request.model, default, request.temperature, request.stop)


def _completion_of(raw: Any, request: CompletionRequest) -> Completion:
    """Content and usage of a foreign response (usage counted offline if it reports none)."""
    try:
        content = _text_of(raw)
    except MalformedResponseError:
        content = ""  # the call was made and costs its prompt at least; the hook sees its own object
    model = getattr(raw, "model", None)
    usage, rejected = _usage_of(raw, request, content)
    return Completion(
        content=content,
        usage=usage,
        model=model if isinstance(model, str) else request.model,
        rejected_usage=rejected,
    )


def _answer(raw: Any, completion: Completion) -> Any:
    """What the hook gets back: the object's own answer, a string one as valid UTF-8 (as
    every answer that enters through :class:`Completion` is)."""
    return completion.content if isinstance(raw, str) else raw


def _on_loop(coroutine: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop) -> T:
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result()


def _report_blocking(run: RunContext, agent_id: str, name: str, seconds: float) -> None:
    report_blocking(
        run,
        f"{agent_id}: a synchronous self.provider.{name}(...) blocked the event loop for {seconds:.2f}s "
        "inside an async hook, so hooks run one at a time whatever the concurrency",
    )
