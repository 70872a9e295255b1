"""``-o KEY=VALUE`` for a pattern: config fields and the pattern's own constructor options.

``orchestrate run iterative "..." -o max_iterations=2 -o score_threshold=0.8`` sets the
pattern's constructor arguments; ``-o num_agents=5`` sets a config field.  A name that
is neither is a one-line error listing the valid ones (closest first).  The constructor
options a run was built with are recorded in its labels, so ``resume`` and ``replay``
rebuild the same orchestrator.
"""

from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from ..base import BaseOrchestrator
from ..errors import ConfigError

__all__ = ["LABEL", "constructor_options", "recorded_options", "split_options"]

#: The run label that records the CLI's constructor options (JSON) for resume and replay.
LABEL = "orchestrate.options"

# Set by the CLI itself (or not expressible as JSON), never by -o.
_RESERVED = frozenset({"self", "config", "provider", "store", "prices", "guardrails", "labels"})


def constructor_options(cls: type[BaseOrchestrator]) -> list[str]:
    """The keyword arguments ``cls`` accepts besides config, provider and the CLI's own."""
    names: list[str] = []
    for klass in cls.__mro__:
        if klass is BaseOrchestrator or not issubclass(klass, BaseOrchestrator):
            break
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for parameter in inspect.signature(init).parameters.values():
            keyword = parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
            if keyword and parameter.name not in _RESERVED and parameter.name not in names:
                names.append(parameter.name)
    return names


def split_options(
    cls: type[BaseOrchestrator], options: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` as ``(config fields, constructor keyword arguments)`` for ``cls``."""
    config_names = [f.name for f in fields(cls.config_class)]
    own = constructor_options(cls)
    config: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    for key, value in options.items():
        if key in config_names:
            config[key] = value
        elif key in own:
            kwargs[key] = value
        else:
            close = difflib.get_close_matches(key, own + config_names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            pattern_part = f"{cls.__name__} options: {', '.join(own)}; " if own else ""
            raise ConfigError(
                f"unknown option {key!r}{hint}; {pattern_part}config fields: {', '.join(sorted(config_names))}"
            )
    return config, kwargs


def recorded_options(labels: Any) -> dict[str, Any]:
    """The constructor options a run's labels recorded (see :data:`LABEL`), or ``{}``."""
    raw = labels.get(LABEL) if isinstance(labels, Mapping) else None
    if not raw:
        return {}
    try:
        options = json.loads(str(raw))
    except json.JSONDecodeError as error:
        raise ConfigError(f"the run's recorded options ({LABEL}) are not JSON: {error}") from error
    if not isinstance(options, dict):
        raise ConfigError(f"the run's recorded options ({LABEL}) are not an object")
    return options
