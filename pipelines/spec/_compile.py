"""From a pipeline file to a :class:`~millstream.pipelines.plan.Pipeline`, checked throughout.

:func:`load_pipeline` reads the file (:func:`~._document.read_yaml`), validates its shape
(:class:`~._models.FileSpec`), then everything that needs the plugin registry or the whole file:
codecs, connectors and their configs, steps and their arguments, expressions, topic references,
the graph. Every error is a :class:`ConfigError` at the file, line and column of the key or
value at fault. Nothing is connected to and nothing runs: steps are built once, to check them,
and dropped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePath
from typing import Any

from pydantic import BaseModel

from millstream.core.client import redact_url, store_path
from millstream.core.connector import ConnectorConfig, Sink, Source
from millstream.core.errors import ConfigError
from millstream.core.plugins import Registry, get_registry
from millstream.core.step import Expression

from ..plan import (
    OnError,
    Output,
    Pipeline,
    Retry,
    RoutePlan,
    SinkPlan,
    SourcePlan,
    StepPlan,
    TopicPlan,
)
from ._checks import (
    check_cycles,
    check_dead_letter_loop,
    check_names,
    check_self_input,
    check_topic,
    item_path,
)
from ._document import Document, Positions, YamlPath, format_path, read_yaml
from ._models import FileSpec, RetrySpec, RouteSpec, SinkSpec, SourceSpec, TopicSpec
from ._validation import validate_node

__all__ = ["load_pipeline", "load_pipelines"]


def load_pipeline(
    path: str | os.PathLike[str],
    *,
    registry: Registry | None = None,
    env: Mapping[str, str] | None = None,
) -> Pipeline:
    """The pipeline in the file at ``path``, validated; ConfigError, located, when it is not.

    ``registry`` gives the connectors, steps and codecs (default: :func:`get_registry`);
    ``env`` the variables for ``${VAR}`` (default: ``os.environ``).
    """
    return _Compiler(read_yaml(path, env=env), registry or get_registry()).compile()


def load_pipelines(
    paths: Iterable[str | os.PathLike[str]],
    *,
    registry: Registry | None = None,
    env: Mapping[str, str] | None = None,
) -> list[Pipeline]:
    """The pipelines of several files, to run together: each valid on its own, no two with the
    same name, no two routes or sinks in one consumer group, and a topic declared in more than
    one file declared alike in each."""
    registry = registry or get_registry()
    pipelines = [load_pipeline(path, registry=registry, env=env) for path in paths]
    check_together(pipelines)
    return pipelines


def check_together(pipelines: Iterable[Pipeline]) -> None:
    """Pipelines that run together (each loaded from a file): distinct names, a consumer
    group per route and sink, and shared topics declared alike."""
    names: dict[str, str] = {}
    groups: dict[str, tuple[str, str, str]] = {}  # group -> (kind, part, file)
    topics: dict[str, tuple[TopicPlan, str]] = {}
    for pipeline in pipelines:
        positions: Positions = pipeline.positions
        first = names.get(pipeline.name)
        if first is not None:
            raise positions.error(
                f"pipeline name {pipeline.name!r} is also the name of {first}; pipelines that "
                "run together need different names (they name consumer groups)",
                ("pipeline",),
            )
        names[pipeline.name] = positions.file
        _check_groups(pipeline, groups)
        for name, topic in pipeline.topics.items():
            seen = topics.get(name)
            if seen is None:
                topics[name] = (topic, positions.file)
            elif seen[0] != topic:
                raise positions.error(
                    f"topic {name!r} is declared differently in {seen[1]} "
                    f"({_topic_text(seen[0])}) and here ({_topic_text(topic)}); declare it "
                    "alike in both, or in one file only",
                    ("topics", name),
                    at_key=True,
                )


def _check_groups(pipeline: Pipeline, groups: dict[str, tuple[str, str, str]]) -> None:
    """Each of ``pipeline``'s routes and sinks reads in a consumer group no part seen before
    (in ``groups``, which it joins) reads in: two parts in one group would each get only some
    of the events."""
    parts = [("route", n, r.group) for n, r in pipeline.routes.items()]
    parts += [("sink", n, s.group) for n, s in pipeline.sinks.items()]
    for kind, name, group in parts:
        seen = groups.get(group)
        if seen is not None:
            other_kind, other, file = seen
            raise pipeline.positions.error(
                f"{kind} {name!r} would read in consumer group {group!r}, the group of "
                f"{other_kind} {other!r} in {file}; two parts in one group would split each "
                "other's events: rename one of them",
                (f"{kind}s", name),
                at_key=True,
            )
        groups[group] = (kind, name, pipeline.positions.file)


def _topic_text(topic: TopicPlan) -> str:
    parts = [f"partitions {topic.partitions}", f"codec {topic.codec}"]
    if topic.replication not in (None, 1):
        parts.append(f"replication {topic.replication}")
    parts += [f"{k} {v}" for k, v in sorted(topic.config.items())]
    return ", ".join(parts)


_TOPIC_CONFIG = {
    "retention": "retention.ms",
    "compression": "compression.type",
    "cleanup": "cleanup.policy",
}


class _Compiler:
    def __init__(self, document: Document, registry: Registry) -> None:
        self.document = document
        self.positions = document.positions
        self.registry = registry
        self.file = Path(os.path.abspath(document.file))
        self.base_dir = self.file.parent
        self.raw: dict[str, Any] = {}
        self.name = ""

    def compile(self) -> Pipeline:
        value = self.document.value
        if value is None:
            raise ConfigError(
                "the file is empty; a pipeline file names at least `pipeline:` and its `topics:`",
                file=self.positions.file,
            )
        if not isinstance(value, dict):
            raise self.positions.error(
                "a pipeline file is a mapping (pipeline:, topics:, sources:, routes:, sinks:)", ()
            )
        self.raw = value
        spec: FileSpec = validate_node(FileSpec, value, self.positions)
        self.name = spec.pipeline
        check_names(spec, self.positions)
        topics = {
            name: self._topic(name, topic or TopicSpec()) for name, topic in spec.topics.items()
        }
        if spec.dead_letter is not None:
            check_topic(spec.dead_letter, topics, self.positions, ("dead_letter",))
        sources = {name: self._source(name, s, topics) for name, s in spec.sources.items()}
        routes = {name: self._route(name, r, spec, topics) for name, r in spec.routes.items()}
        check_cycles(spec.routes, self.positions)
        sinks = {name: self._sink(name, s, spec, topics) for name, s in spec.sinks.items()}
        return Pipeline(
            name=spec.pipeline,
            file=self.file,
            store=self._store(spec.store),
            dead_letter=spec.dead_letter,
            topics=topics,
            sources=sources,
            routes=routes,
            sinks=sinks,
            tests=tuple(self.raw.get("tests") or ()),
            positions=self.positions,
        )

    # -- topics and the store -------------------------------------------------------------

    def _topic(self, name: str, spec: TopicSpec) -> TopicPlan:
        path: YamlPath = ("topics", name)
        try:
            self.registry.codec(spec.codec)
        except ConfigError as exc:
            raise self.positions.error(exc.message, (*path, "codec")) from None
        config = {}
        for key, store_key in _TOPIC_CONFIG.items():
            value = getattr(spec, key)
            if value is not None:
                config[store_key] = str(value)
        return TopicPlan(
            name=name,
            partitions=spec.partitions,
            replication=spec.replication,
            config=config,
            codec=spec.codec,
        )

    def _store(self, url: str | None) -> str | None:
        if url is None:
            return None
        if not url.startswith("file:"):
            if not url.startswith(("millstream://", "kafka://")):
                raise self.positions.error(
                    f"store URL {redact_url(url)!r} has an unknown scheme; valid: file:DIR, "
                    "millstream://HOST:PORT, kafka://HOST:PORT",
                    ("store",),
                )
            return url
        try:
            directory = store_path(url)
        except ConfigError as exc:
            raise self.positions.error(exc.message, ("store",)) from None
        if not directory.is_absolute():
            directory = self.base_dir / directory
        return f"file:{os.path.normpath(directory)}"

    # -- sources, routes, sinks -------------------------------------------------------------

    def _source(self, name: str, spec: SourceSpec, topics: Mapping[str, TopicPlan]) -> SourcePlan:
        path: YamlPath = ("sources", name)
        connector = self._connector(spec.connector, "source", path)
        config = self._config(connector, self._raw(path).get("config"), path)
        self._check_topics(spec.to, topics, (*path, "to"))
        key = self.expression(spec.key, (*path, "key")) if spec.key is not None else None
        return SourcePlan(
            name=name,
            connector=connector,
            config=config,
            to=spec.to,
            key=key,
            key_text=spec.key,
            where=self.positions.where(path),
        )

    def _route(
        self, name: str, spec: RouteSpec, file: FileSpec, topics: Mapping[str, TopicPlan]
    ) -> RoutePlan:
        path: YamlPath = ("routes", name)
        raw = self._raw(path)
        self._check_topics(spec.from_, topics, (*path, "from"))
        steps = tuple(self._step(name, i, entry) for i, entry in enumerate(spec.steps))
        outputs = []
        for i, output in enumerate(spec.to):
            entry = item_path(self.positions, (*path, "to"), i)
            topic_path = (*entry, "topic") if (*entry, "topic") in self.positions else entry
            check_topic(output.topic, topics, self.positions, topic_path)
            when = None
            if output.when is not None:
                when = self.expression(output.when, (*entry, "when"))
            outputs.append(Output(topic=output.topic, when=when, when_text=output.when))
        if spec.unmatched is not None:
            check_topic(spec.unmatched, topics, self.positions, (*path, "unmatched"))
        check_self_input(name, spec, raw, self.positions)
        return RoutePlan(
            name=name,
            steps=steps,
            outputs=tuple(outputs),
            switch=spec.switch,
            unmatched=spec.unmatched,
            **self._consuming("route", name, spec, file, topics, path),
        )

    def _sink(
        self, name: str, spec: SinkSpec, file: FileSpec, topics: Mapping[str, TopicPlan]
    ) -> SinkPlan:
        path: YamlPath = ("sinks", name)
        connector = self._connector(spec.connector, "sink", path)
        self._check_topics(spec.from_, topics, (*path, "from"))
        config = self._config(connector, self._raw(path).get("config"), path)
        return SinkPlan(
            name=name,
            connector=connector,
            config=config,
            **self._consuming("sink", name, spec, file, topics, path),
        )

    def _consuming(
        self,
        kind: str,
        name: str,
        spec: RouteSpec | SinkSpec,
        file: FileSpec,
        topics: Mapping[str, TopicPlan],
        path: YamlPath,
    ) -> dict[str, Any]:
        """What routes and sinks share (as plan fields): their group, inputs, dead-letter topic
        and error handling, checked (no failure fed back to the part itself)."""
        dead_letter = self._dead_letter(spec.dead_letter, file, topics, path)
        on_error = self._on_error(spec.on_error, dead_letter, path)
        check_dead_letter_loop(
            kind,
            name,
            spec.from_,
            spec.dead_letter,
            dead_letter,
            on_error == "stop",
            self.positions,
        )
        return {
            "group": f"{self.name}.{name}",
            "inputs": spec.from_,
            "dead_letter": dead_letter,
            "start": spec.start,
            "workers": spec.workers,
            "retry": _retry(spec.retry),
            "on_error": on_error,
            "where": self.positions.where(path),
        }

    def _dead_letter(
        self, own: str | None, file: FileSpec, topics: Mapping[str, TopicPlan], path: YamlPath
    ) -> str | None:
        if own is not None:
            check_topic(own, topics, self.positions, (*path, "dead_letter"))
            return own
        return file.dead_letter

    def _on_error(self, word: str | None, dead_letter: str | None, path: YamlPath) -> OnError:
        if word == "stop":
            return "stop"
        if word is not None and dead_letter is None:
            raise self.positions.error(
                f"on_error: {word} needs a dead-letter topic: set `dead_letter: TOPIC` here or "
                "at the top of the file, or use `on_error: stop`",
                (*path, "on_error"),
            )
        return "dead_letter"

    def _check_topics(
        self, names: tuple[str, ...], topics: Mapping[str, TopicPlan], path: YamlPath
    ) -> None:
        for i, topic in enumerate(names):
            check_topic(topic, topics, self.positions, item_path(self.positions, path, i))

    # -- connectors ---------------------------------------------------------------------------

    def _connector(self, name: str, kind: str, path: YamlPath) -> Any:
        table: Mapping[str, Any] = (
            self.registry.sources if kind == "source" else self.registry.sinks
        )
        other: Mapping[str, Any] = (
            self.registry.sinks if kind == "source" else self.registry.sources
        )
        if name not in table and name in other:
            known = ", ".join(sorted(table)) or "none"
            raise self.positions.error(
                f"{name!r} is a {'sink' if kind == 'source' else 'source'} connector and cannot "
                f"be a {kind}; {kind} connectors: {known}",
                (*path, "connector"),
            )
        try:
            return self.registry.source(name) if kind == "source" else self.registry.sink(name)
        except ConfigError as exc:
            raise self.positions.error(exc.message, (*path, "connector")) from None

    def _config(
        self, connector: type[Source] | type[Sink], raw: Any, path: YamlPath
    ) -> ConnectorConfig:
        model = connector.Config
        config = validate_node(
            model,
            {} if raw is None else raw,
            self.positions,
            (*path, "config"),
            context={"base_dir": self.base_dir},
        )
        return _resolve_paths(config, self.base_dir)

    # -- steps and expressions -------------------------------------------------------------

    def _step(self, route: str, index: int, entry: dict[str, Any]) -> StepPlan:
        ((name, _),) = entry.items()
        path: YamlPath = ("routes", route, "steps", index, name)
        try:
            step = self.registry.step(name)
        except ConfigError as exc:
            raise self.positions.error(exc.message, path, at_key=True) from None
        raw_argument = self._raw(path)
        args = validate_node(step.Args, raw_argument, self.positions, path)
        context = _StepContext(self.name, route, self.base_dir, self, path)
        try:
            step(args, context)
        except ConfigError as exc:
            if exc.file is not None:
                raise
            raise self.positions.error(exc.message, (*path, *_sub_path(exc.path or ""))) from None
        except Exception as exc:
            raise self.positions.error(
                f"step {name!r} cannot be built: {type(exc).__name__}: {exc}", path
            ) from None
        return StepPlan(
            step=step, args=args, path=format_path(path), where=self.positions.where(path)
        )

    def expression(self, text: str, path: YamlPath) -> Expression:
        """``text`` compiled; a ConfigError from the compiler is located at ``path``."""
        from ..expr import compile_expression

        try:
            return compile_expression(text)
        except ConfigError as exc:
            raise self.positions.error(exc.message, path) from None

    def _raw(self, path: YamlPath) -> Any:
        value: Any = self.raw
        for part in path:
            value = value[part]
        return value


@dataclass
class _StepContext:
    """The StepContext a step is built with while its file is checked."""

    pipeline: str
    route: str
    base_dir: Path
    compiler: _Compiler = field(repr=False)
    path: YamlPath = ()

    def expression(self, text: str, path: str = "") -> Expression:
        return self.compiler.expression(text, (*self.path, *_sub_path(path)))


_SUB_PATH = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def _sub_path(text: str) -> YamlPath:
    """``"fields.temp[0]"`` → ``("fields", "temp", 0)``."""
    return tuple(int(index) if index else name for index, name in _SUB_PATH.findall(text))


def _retry(spec: RetrySpec) -> Retry:
    second = timedelta(seconds=1)
    return Retry(
        max_attempts=spec.max_attempts, initial_s=spec.initial / second, max_s=spec.max / second
    )


def _resolve_paths(value: Any, base_dir: Path) -> Any:
    """``value`` with every relative path in it (fields typed Path) made absolute against
    ``base_dir``; models are copied, never changed."""
    if isinstance(value, PurePath):
        path = Path(value).expanduser()
        return path if path.is_absolute() else base_dir / path
    if isinstance(value, BaseModel):
        changes = {}
        for name in type(value).model_fields:
            current = getattr(value, name)
            resolved = _resolve_paths(current, base_dir)
            if resolved is not current:
                changes[name] = resolved
        return value.model_copy(update=changes) if changes else value
    if isinstance(value, list | tuple):
        items = [_resolve_paths(item, base_dir) for item in value]
        if any(new is not old for new, old in zip(items, value, strict=True)):
            return type(value)(items)
        return value
    if isinstance(value, dict):
        resolved = {k: _resolve_paths(v, base_dir) for k, v in value.items()}
        if any(resolved[k] is not v for k, v in value.items()):
            return resolved
        return value
    return value
