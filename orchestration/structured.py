"""Structured output: a JSON answer that follows a schema, validated, with retries.

The adapters ask each vendor for the schema in its own way (OpenAI ``response_format``,
Anthropic a forced tool, Ollama ``format``); here the answer is checked.  An answer that
is not JSON, or does not match, is sent back to the model with what is wrong, and the
model is asked again, up to :attr:`OutputSchema.retries
<orchestration.toolcalls.OutputSchema.retries>` times; every attempt is a call of its
own (billed, recorded and replayed like any other).  An answer with tool calls is not
checked: the model asked for tools first, and answers after their results.

:func:`complete_structured` does this around one provider; the framework's model calls
(``call_llm``) do it around their retries, fallbacks and billing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from .completions import Completion, CompletionRequest
from .errors import StructuredOutputError
from .llm import as_provider
from .toolcalls import OutputSchema, load_jsonschema_async

__all__ = ["complete_structured", "correction", "structured_call"]

#: Called when an attempt's answer did not match: (attempt number, the error).
OnMismatch = Callable[[int, StructuredOutputError], None]


def correction(schema: OutputSchema, error: StructuredOutputError) -> str:
    """The user message that shows the model why its answer was refused."""
    problems = "\n".join(f"- {problem}" for problem in error.errors) or "- it does not match"
    return (
        f"Your answer cannot be used: it must be JSON that matches the schema {schema.name!r}.\n"
        f"{problems}\n"
        "Answer again with only the corrected JSON, no other text."
    )


async def structured_call(
    request: CompletionRequest,
    call: Callable[[CompletionRequest], Awaitable[Completion]],
    on_mismatch: OnMismatch | None = None,
) -> Completion:
    """Answer ``request`` with ``call`` until the answer matches its ``response_format``.

    Returns the matching completion with ``parsed`` set (or one with tool calls, as it
    came).  Raises :class:`~orchestration.errors.StructuredOutputError` when the last of
    ``1 + retries`` answers still does not match.
    """
    schema = request.response_format
    if schema is None:
        return await call(request)
    await load_jsonschema_async()
    attempt = request
    for number in range(1, schema.retries + 2):
        completion = await call(attempt)
        if completion.tool_calls:
            return completion
        try:
            value = schema.parse(completion.content)
        except StructuredOutputError as error:
            error.attempts = number
            if number > schema.retries:
                raise StructuredOutputError(
                    f"{error} (after {number} answer{'s' if number > 1 else ''}; raise "
                    "OutputSchema(retries=...) or simplify the schema)",
                    errors=error.errors,
                    content=error.content,
                    attempts=number,
                ) from None
            if on_mismatch is not None:
                on_mismatch(number, error)
            attempt = replace(
                attempt,
                messages=[
                    *attempt.messages,
                    {"role": "assistant", "content": completion.content},
                    {"role": "user", "content": correction(schema, error)},
                ],
            )
            continue
        return replace(completion, parsed=value)
    raise AssertionError("unreachable: the loop returns or raises")


async def complete_structured(provider: object, request: CompletionRequest) -> Completion:
    """``provider.complete(request)``, with its ``response_format`` validated and
    corrected (see the module docstring); ``completion.parsed`` is the JSON value.

    For a provider used directly, outside a run: inside one, ``call_llm`` does the same
    with budgets, retries and events.
    """
    return await structured_call(request, as_provider(provider).complete)
