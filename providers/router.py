"""Routing ``"vendor:model"`` ids to provider instances.

A :class:`ProviderRouter` is itself a provider, so an orchestrator configured with
``primary_model="openai:gpt-4o-mini"`` and ``fallback_model="anthropic:claude-haiku-4-5"``
reaches both vendors through one object: the core's fallback chain can cross vendors.
Providers named in a model id are created on first use through
:func:`providers.registry.get_provider` (so their keys are read then), or given
up front as instances.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Self

from orchestration.errors import ConfigError
from orchestration.llm import Completion, CompletionChunk, CompletionRequest, Provider, as_provider

from .registry import get_provider, is_known_provider, split_model_id

__all__ = ["ProviderRouter"]


class ProviderRouter(Provider):
    """A provider that dispatches each request by the vendor prefix of its model id.

    Args:
        providers: instances by route name, e.g. ``{"openai": OpenAIProvider(...),
            "fast": OllamaProvider("llama3.2")}`` (any object :func:`as_provider` accepts).
        default: the route for model ids without a known prefix (and for no model).
        default_model: the model id used when a request names none.
        factory: ``factory(name)`` creates a missing route's provider (default: the
            registry, with ``provider_options`` such as a shared ``rate_limiter``).

    Providers the router created are closed by :meth:`aclose`; ones you passed in are yours.
    """

    name = "router"

    def __init__(
        self,
        providers: Mapping[str, Any] | None = None,
        *,
        default: str | None = None,
        default_model: str | None = None,
        factory: Callable[[str], Provider] | None = None,
        **provider_options: Any,
    ) -> None:
        self._providers: dict[str, Provider] = {
            key: as_provider(value) for key, value in (providers or {}).items()
        }
        self._owned: list[Provider] = []
        self.default = default
        self.default_model = default_model
        self._factory = factory
        self._options = provider_options
        self._known: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"ProviderRouter(routes={sorted(self._providers)!r}, default={self.default!r})"

    def _knows(self, name: str) -> bool:
        if name in self._providers:
            return True
        if self._factory is not None:
            return False
        known = self._known.get(name)
        if known is None:  # entry points are scanned once per name, not per call
            known = self._known[name] = is_known_provider(name)
        return known

    def route(self, model: str | None) -> tuple[str, str | None]:
        """``(route name, model for that provider)`` for a model id."""
        spec = model or self.default_model
        if spec and ":" in spec:
            name, rest = split_model_id(spec)
            if self._knows(name) or (self._factory is not None and self.default is None):
                return name, rest
        elif spec and self.default is None and self._knows(spec.strip().lower()):
            return spec.strip().lower(), None  # a bare vendor name: its default model
        if self.default is None:
            routes = ", ".join(sorted(self._providers)) or "openai, anthropic, ollama, local"
            raise ConfigError(
                f"router: model {spec!r} names no provider; write it as 'vendor:model' "
                f"(vendors: {routes}) or give the router a default"
            )
        return self.default, spec

    def provider(self, name: str) -> Provider:
        """The provider for route ``name``, created (and kept) on first use."""
        found = self._providers.get(name)
        if found is None:
            factory = self._factory
            found = factory(name) if factory is not None else get_provider(name, **self._options)
            self._providers[name] = found
            self._owned.append(found)
        return found

    async def complete(self, request: CompletionRequest) -> Completion:
        """Answer with the provider the request's model id names."""
        name, model = self.route(request.model)
        return await self.provider(name).complete(dataclasses.replace(request, model=model))

    async def stream(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        """Stream from the routed provider (one chunk if it cannot stream)."""
        name, model = self.route(request.model)
        provider = self.provider(name)
        routed = dataclasses.replace(request, model=model)
        stream = getattr(provider, "stream", None)
        if stream is None:
            completion = await provider.complete(routed)
            yield CompletionChunk(
                delta=completion.content,
                usage=completion.usage,
                finish_reason=completion.finish_reason,
                model=completion.model,
                rejected_usage=completion.rejected_usage,
            )
            return
        async for chunk in stream(routed):
            yield chunk

    async def aclose(self) -> None:
        """Close the providers this router created."""
        owned, self._owned = self._owned, []
        for provider in owned:
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()
            for key in [k for k, v in self._providers.items() if v is provider]:
                del self._providers[key]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
