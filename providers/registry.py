"""Selecting a provider by name: ``"openai"``, ``"anthropic:claude-sonnet-4-5"``, ``"local"``...

Built-in names are ``openai``, ``anthropic``, ``ollama``, ``local`` and ``router``;
other names are looked up in the ``orchestration.providers`` entry-point group, so a
plug-in package (or the core's ``scripted``) can add its own.  Keys and endpoints are
read from the environment when a provider is constructed, never at import.  Each
``*_provider(model)`` function here is an entry-point factory: ``factory(model)``
returns a ready :class:`~orchestration.llm.Provider`.  Unless given ``rate_limiter=``,
the providers they build take their limiter from the process's
:func:`~orchestration.ratelimit.process_rate_limiters`, so the providers the CLI and the
server build for each run share one limiter per vendor, endpoint and key (and so the
vendor's limits, its rate-limit headers and its 429 pauses).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from orchestration.errors import ConfigError
from orchestration.llm import Provider
from orchestration.ratelimit import process_rate_limiters

__all__ = [
    "BUILTIN_PROVIDERS",
    "ENTRY_POINT_GROUP",
    "anthropic_provider",
    "available_providers",
    "get_provider",
    "is_known_provider",
    "local_provider",
    "ollama_provider",
    "openai_provider",
    "router_provider",
    "split_model_id",
]

ENTRY_POINT_GROUP = "orchestration.providers"


def _shared_limiter(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the process's limiter pool unless a ``rate_limiter`` was given."""
    if options.get("rate_limiter") is None:
        options["rate_limiter"] = process_rate_limiters()
    return options


def openai_provider(model: str | None = None, **options: Any) -> Provider:
    """OpenAI (or a compatible server via ``OPENAI_BASE_URL``); key from ``OPENAI_API_KEY``."""
    from .openai import OpenAIProvider

    return OpenAIProvider(model, **_shared_limiter(options))


def anthropic_provider(model: str | None = None, **options: Any) -> Provider:
    """Anthropic Messages; key from ``ANTHROPIC_API_KEY``, endpoint ``ANTHROPIC_BASE_URL``."""
    from .anthropic import AnthropicProvider

    return AnthropicProvider(model, **_shared_limiter(options))


def ollama_provider(model: str | None = None, **options: Any) -> Provider:
    """Ollama's native API at ``OLLAMA_HOST`` (default 127.0.0.1:11434)."""
    from .ollama import OllamaProvider

    return OllamaProvider(model, **_shared_limiter(options))


def local_provider(model: str | None = None, **options: Any) -> Provider:
    """The bundled Gemma 3 270M on a llama.cpp server the framework starts (extra ``local``)."""
    from .local import LocalProvider

    return LocalProvider(model, **_shared_limiter(options))


def router_provider(model: str | None = None, **options: Any) -> Provider:
    """A :class:`~providers.router.ProviderRouter`: models are ``"vendor:model"`` ids."""
    from .router import ProviderRouter

    return ProviderRouter(default_model=model, **options)


BUILTIN_PROVIDERS: dict[str, Callable[..., Provider]] = {
    "openai": openai_provider,
    "anthropic": anthropic_provider,
    "ollama": ollama_provider,
    "local": local_provider,
    "router": router_provider,
}


def split_model_id(spec: str) -> tuple[str, str | None]:
    """``"openai:gpt-4o-mini"`` -> ``("openai", "gpt-4o-mini")``; ``"local"`` -> ``("local", None)``.

    Only the first colon separates: ``"ollama:llama3.2:3b"`` keeps the model's tag.
    """
    name, _, model = spec.strip().partition(":")
    return name.strip().lower(), (model.strip() or None)


def _plugins() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_providers() -> list[str]:
    """Every name :func:`get_provider` accepts (built-ins and installed plug-ins)."""
    return sorted(set(BUILTIN_PROVIDERS) | set(_plugins()))


def is_known_provider(name: str) -> bool:
    """Whether ``name`` (without a model) is a built-in or plug-in provider."""
    return name in BUILTIN_PROVIDERS or name in _plugins()


def get_provider(name: str, model: str | None = None, **options: Any) -> Provider:
    """The provider called ``name`` (optionally ``"name:model"``), constructed now.

    ``model`` overrides a model given in ``name``.  ``options`` go to the provider's
    constructor (``api_key=``, ``base_url=``, ``timeout=``, ``rate_limiter=``...).
    Raises :class:`~orchestration.errors.ConfigError` for an unknown name or a
    missing key, in one line that says what to do.
    """
    provider_name, named_model = split_model_id(name)
    model = model or named_model
    factory: Callable[..., Provider] | None = BUILTIN_PROVIDERS.get(provider_name)
    if factory is None:
        plugin = _plugins().get(provider_name)
        if plugin is None:
            raise ConfigError(
                f"unknown provider {provider_name!r}; choose one of: {', '.join(available_providers())} "
                f"(or install a package with an {ENTRY_POINT_GROUP!r} entry point)"
            )
        factory = plugin.load()
    # Keyword call: works for our factories and for classes such as ScriptedProvider
    # whose first positional parameter is not the model.
    return factory(model=model, **options) if model is not None else factory(**options)
