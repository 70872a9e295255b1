"""HTTP LLM providers: OpenAI-compatible, Anthropic, Ollama and a local llama.cpp model.

Each adapter implements :class:`orchestration.llm.Provider` over one pooled
``httpx.AsyncClient``; :func:`get_provider` selects one by name (``"openai"``,
``"anthropic:claude-sonnet-4-5"``, ``"ollama:llama3.2"``, ``"local"``) and
:class:`ProviderRouter` routes ``"vendor:model"`` ids so a fallback model can live on
another vendor.  Importing this package reads no environment and opens no connection.
"""

from __future__ import annotations

from .anthropic import AnthropicProvider
from .local import LocalModelServer, LocalProvider
from .ollama import OllamaProvider
from .openai import OpenAIProvider
from .registry import available_providers, get_provider, split_model_id
from .router import ProviderRouter

__all__ = [
    "AnthropicProvider",
    "LocalModelServer",
    "LocalProvider",
    "OllamaProvider",
    "OpenAIProvider",
    "ProviderRouter",
    "available_providers",
    "get_provider",
    "split_model_id",
]
