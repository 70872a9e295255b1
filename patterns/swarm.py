"""Dream Swarm: a parallel multi-domain search.

``num_agents`` searchers run in parallel (at most ``max_parallel`` at once), each on one
subtask in one domain.  Subtasks come from an LLM decomposition (or are given with
``subtasks=``); each gets a domain: the one the model or the caller named, if it is in
``domains``, else one classified from the subtask's text by keywords, else the least-used
domain.  An unparseable decomposition falls back to one subtask per domain (announced in
a ``warning`` event).  Findings are deduplicated across agents, then one synthesis call
merges them into a report with a section per domain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestration import (
    AgentResult,
    AgentType,
    ConfigError,
    OrchestratorConfig,
    SubTask,
    SynthesisResult,
)

from ._base import PatternOrchestrator, is_int, is_number, is_text_list, prompts_problems
from ._parsing import PlanItem
from ._prompts import SWARM_PROMPTS

__all__ = ["DOMAIN_KEYWORDS", "DreamSwarmConfig", "DreamSwarmOrchestrator", "classify_domain"]

#: Words that suggest a domain, for subtasks whose domain was not named.
DOMAIN_KEYWORDS: Mapping[str, tuple[str, ...]] = {
    "arxiv": (
        "paper",
        "papers",
        "preprint",
        "study",
        "studies",
        "research",
        "theory",
        "theoretical",
        "state of the art",
        "algorithm",
        "benchmark",
        "open problems",
        "academic",
    ),
    "academic": (
        "paper",
        "papers",
        "study",
        "studies",
        "journal",
        "peer-reviewed",
        "research",
        "theory",
        "state of the art",
        "citation",
        "open problems",
    ),
    "github": (
        "code",
        "repository",
        "repositories",
        "implementation",
        "library",
        "libraries",
        "open source",
        "open-source",
        "framework",
        "sdk",
        "tool",
        "tools",
        "api",
    ),
    "technical": (
        "implementation",
        "architecture",
        "specification",
        "engineering",
        "performance",
        "api",
        "protocol",
        "hardware",
        "software",
        "technical",
    ),
    "news": (
        "news",
        "recent",
        "latest",
        "announcement",
        "announced",
        "today",
        "this year",
        "market",
        "industry",
        "company",
        "companies",
        "funding",
        "risks",
        "regulation",
    ),
    "wikipedia": (
        "background",
        "history",
        "definition",
        "definitions",
        "overview",
        "concept",
        "concepts",
        "introduction",
        "what is",
        "key concepts",
    ),
    "text": ("article", "articles", "text", "documents", "blog", "essay"),
    "image": ("image", "images", "photo", "photos", "picture", "diagram", "visual"),
    "video": ("video", "videos", "youtube", "talk", "lecture", "footage"),
    "social": ("social", "twitter", "reddit", "forum", "opinion", "opinions", "community", "sentiment"),
    "product": (
        "product",
        "products",
        "price",
        "pricing",
        "buy",
        "vendor",
        "vendors",
        "review",
        "reviews",
        "applications",
        "commercial",
    ),
}


@dataclass
class DreamSwarmConfig(OrchestratorConfig):
    """Configuration of :class:`DreamSwarmOrchestrator` (plus every ``OrchestratorConfig`` field).

    - ``num_agents``: how many searchers (subtasks).
    - ``domains``: the search domains, e.g. ``['arxiv', 'github', 'news', 'wikipedia']``.
    - ``max_parallel``: searchers running at once (default ``max_concurrent_agents``).
    - ``domain_keywords``: extra classification keywords per domain (added to the built-in
      ones; a domain with no keywords is matched by its own name).
    - ``dedupe_threshold``: two findings whose word sets overlap at least this much
      (Jaccard, 0-1] are duplicates; 1.0 removes only exact repeats.
    - ``prompts``: overrides of ``decompose``, ``search``, ``synthesize``.
    """

    domains: list[str] = field(default_factory=lambda: ["arxiv", "github", "news", "wikipedia"])
    max_parallel: int | None = None
    domain_keywords: dict[str, list[str]] = field(default_factory=dict)
    dedupe_threshold: float = 0.85
    prompts: dict[str, str] = field(default_factory=dict)

    @property
    def concurrency(self) -> int:
        """How many searchers may run at once."""
        if not self.parallel_execution:
            return 1
        return self.max_parallel if self.max_parallel is not None else self.max_concurrent_agents

    def validate(self) -> list[str]:
        """Every problem with this config, as messages naming the field."""
        errors = super().validate()
        domains = self.domains
        if not is_text_list(domains):
            errors.append(f"domains must be a non-empty list of domain names, got {domains!r}")
        elif len({d.strip().lower() for d in domains}) != len(domains):
            errors.append(f"domains must not repeat a name, got {list(domains)!r}")
        value = self.max_parallel
        if value is not None and not is_int(value):
            errors.append(f"max_parallel must be an integer or None, got {value!r}")
        elif value is not None and value < 1:
            errors.append(f"max_parallel must be >= 1, got {value}")
        threshold = self.dedupe_threshold
        if not is_number(threshold) or not 0 < threshold <= 1:
            errors.append(f"dedupe_threshold must be a number in (0, 1], got {threshold!r}")
        if not isinstance(self.domain_keywords, Mapping) or not all(
            isinstance(v, Sequence) and not isinstance(v, str) for v in self.domain_keywords.values()
        ):
            errors.append(
                f"domain_keywords must map a domain to a list of words, got {self.domain_keywords!r}"
            )
        return errors + prompts_problems(self.prompts)


def classify_domain(
    text: str,
    domains: Sequence[str],
    keywords: Mapping[str, Sequence[str]] | None = None,
    load: Mapping[str, int] | None = None,
) -> tuple[str, str]:
    """The best domain for ``text`` and how it was chosen (``"keywords"`` or ``"balanced"``).

    Each domain scores one point per keyword (or its own name) found as a whole word;
    the highest score wins, ties going to the less-used domain (``load``) then to
    ``domains`` order.  With no match the least-used domain is chosen.
    """
    lowered = f" {' '.join(re.findall(r'[a-z0-9+#-]+', text.lower()))} "
    load = load or {}
    best: tuple[int, int, int, str] | None = None
    for order, domain in enumerate(domains):
        words = {domain.lower(), *DOMAIN_KEYWORDS.get(domain.lower(), ())}
        words.update(w.lower() for w in (keywords or {}).get(domain, ()))
        score = sum(1 for word in words if f" {word} " in lowered)
        candidate = (-score, load.get(domain, 0), order, domain)
        if score and (best is None or candidate < best):
            best = candidate
    if best is not None:
        return best[3], "keywords"
    least = min(domains, key=lambda d: load.get(d, 0))  # min() keeps the first of equals: domains order
    return least, "balanced"


class DreamSwarmOrchestrator(PatternOrchestrator):
    """Parallel multi-domain search with a per-domain synthesis.

    ``DreamSwarmOrchestrator(config, provider, subtasks=None)``: ``subtasks`` (optional)
    are strings, ``(domain, text)`` pairs, ``{"description": ..., "domain": ...}`` dicts
    or :class:`SubTask` objects with ``metadata["domain"]``; without them the model plans
    ``num_agents`` subtasks.
    """

    config_class = DreamSwarmConfig
    default_prompts = SWARM_PROMPTS
    config: DreamSwarmConfig

    def __init__(
        self,
        config: OrchestratorConfig | None = None,
        provider: Any = None,
        *,
        subtasks: Sequence[Any] | None = None,
        prompts: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(self._own_config(config), provider, prompts=prompts, **options)
        self.subtasks = None if subtasks is None else [_explicit(item) for item in subtasks]
        if self.subtasks is not None and not self.subtasks:
            raise ConfigError("subtasks must not be empty (omit it to let the model plan the search)")

    async def decompose_task(self, task: str, context: dict[str, Any] | None = None) -> list[SubTask]:
        """``num_agents`` search subtasks, each assigned a domain."""
        config = self.config
        domains = list(config.domains)
        if self.subtasks is not None:
            items = self.subtasks
        else:
            items = await self.plan_with_llm(
                task,
                config.num_agents,
                fallback=lambda t, n: [f"Search {domains[i % len(domains)]} for: {t}" for i in range(n)],
                fallback_label="domain",
                domains=", ".join(domains),
            )
        load: dict[str, int] = {}
        subtasks = []
        for index, item in enumerate(items, 1):
            named = _named_domain(item.fields.get("domain"), domains)
            if named is not None:
                domain, source = named, "explicit"
            else:
                domain, source = classify_domain(item.description, domains, config.domain_keywords, load)
            load[domain] = load.get(domain, 0) + 1
            subtasks.append(
                SubTask(
                    id=f"search_{index}",
                    description=item.description,
                    agent_type=AgentType.SEARCHER,
                    metadata={"domain": domain, "domain_source": source},
                )
            )
        return subtasks

    async def execute_subtask(self, subtask: SubTask, context: dict[str, Any] | None = None) -> AgentResult:
        """One searcher: one model call in its domain."""
        domain = str(subtask.metadata.get("domain", "general"))
        task = (context or {}).get("task", subtask.description)
        completion = await self.call_llm(
            self.prompts.render("search", subtask=subtask.description, task=task, domain=domain)
        )
        return self.result_for(
            context,
            subtask.id,
            AgentType.SEARCHER,
            completion.content,
            model=completion.model,
            metadata={"domain": domain},
        )

    async def synthesize_results(
        self, agent_results: list[AgentResult], context: dict[str, Any] | None = None
    ) -> str | SynthesisResult:
        """Deduplicate findings across agents, then merge them per domain in one call."""
        context = context or {}
        order = list(self.config.domains)
        by_domain: dict[str, list[AgentResult]] = {}
        for result in agent_results:
            by_domain.setdefault(str(result.metadata.get("domain", "general")), []).append(result)
        domains = [d for d in order if d in by_domain] + [d for d in by_domain if d not in order]
        kept: list[tuple[str, set[str]]] = []
        removed = 0
        sections = []
        for domain in domains:
            lines = []
            for result in by_domain[domain]:
                for finding in _findings(result.content):
                    tokens = _tokens(finding)
                    normal, words = " ".join(tokens), set(tokens)
                    if _is_duplicate(normal, words, kept, self.config.dedupe_threshold):
                        removed += 1
                        continue
                    kept.append((normal, words))
                    lines.append(f"- {finding}")
            agents = ", ".join(r.agent_id for r in by_domain[domain])
            body = "\n".join(lines) if lines else "(no new findings: all repeated other domains)"
            sections.append(f"## {domain} (from {agents})\n{body}")
        missing = [d for d in order if d not in by_domain]
        failed = [r for r in context.get("failed_results", ()) if isinstance(r, AgentResult)]
        if failed:
            sections.append("Searches that failed: " + "; ".join(f"{r.agent_id}: {r.error}" for r in failed))
        completion = await self.call_llm(
            self.prompts.render("synthesize", task=context.get("task", ""), sections="\n\n".join(sections))
        )
        meta = {
            "domains": {d: [r.agent_id for r in by_domain[d]] for d in domains},
            "domains_without_results": missing,
            "findings": len(kept),
            "duplicates_removed": removed,
        }
        self.set_outcome(metadata={"swarm": meta})
        return SynthesisResult(
            content=completion.content,
            level=1,
            source_ids=[r.agent_id for r in agent_results],
            model=completion.model,
            metadata=meta,
        )


def _explicit(item: Any) -> PlanItem:
    if isinstance(item, str) and item.strip():
        return PlanItem(item.strip(), {})
    if isinstance(item, SubTask):
        return PlanItem(item.description, dict(item.metadata))
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
        return PlanItem(item[1], {"domain": item[0]})
    if isinstance(item, Mapping) and isinstance(item.get("description"), str):
        return PlanItem(item["description"], dict(item))
    raise ConfigError(
        f"swarm subtask {item!r} is not a string, a (domain, text) pair, a dict with 'description' or a SubTask"
    )


def _named_domain(value: Any, domains: Sequence[str]) -> str | None:
    if not isinstance(value, str):
        return None
    wanted = value.strip().lower()
    return next((d for d in domains if d.lower() == wanted), None)


_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d{1,3}[.)])\s+")


def _findings(content: str) -> list[str]:
    """A result split into findings: bullet/numbered lines, else paragraphs."""
    lines = [line.strip() for line in content.splitlines() if line.strip()]
    if any(_BULLET.match(line) for line in lines):  # a list: one finding per line, headings dropped
        return [_BULLET.sub("", line).strip() for line in lines if not line.endswith(":")]
    return [" ".join(part.split()) for part in re.split(r"\n\s*\n", content) if part.strip()]


def _tokens(text: str) -> list[str]:
    """``text``'s lower-cased words and numbers, in order (a finding's identity for dedupe)."""
    return re.findall(r"[a-z0-9]+", text.lower())


def _is_duplicate(normal: str, words: set[str], kept: list[tuple[str, set[str]]], threshold: float) -> bool:
    for other, other_words in kept:
        if normal == other:
            return True
        union = words | other_words
        if threshold < 1 and union and len(words & other_words) / len(union) >= threshold:
            return True
    return False
