"""load_pipeline: a file becomes a plan, and each kind of mistake is one error at its place."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, model_validator

from millstream.core import ConnectorConfig, Sink
from millstream.core.errors import ConfigError
from millstream.pipelines.spec import load_pipeline, load_pipelines
from millstream.pipelines.spec._compile import check_together

GOOD = """
pipeline: demo
store: file:./data
dead_letter: dead
topics:
  readings: {partitions: 4, retention: 7d, compression: zstd, cleanup: compact}
  clean: {partitions: 2, codec: text}
  dead:
sources:
  sensors:
    connector: ticker
    config: {rate: 50}
    to: readings
routes:
  tidy:
    from: readings
    to: clean
    workers: 2
    retry: {max_attempts: 5, initial: 100ms, max: 2s}
sinks:
  out:
    connector: archive
    from: [clean]
    config: {path: out/clean.jsonl, extra: [a.txt, /abs/b.txt]}
    on_error: stop
    start: latest
"""


def test_a_valid_file_becomes_the_plan(load, tmp_path: Path) -> None:
    pipeline = load(GOOD)
    assert pipeline.name == "demo"
    assert pipeline.file == tmp_path / "pipeline.yaml"
    assert pipeline.store == f"file:{tmp_path / 'data'}"
    readings = pipeline.topics["readings"]
    assert (readings.partitions, readings.codec) == (4, "json")
    assert readings.config == {
        "retention.ms": str(7 * 86_400_000),
        "compression.type": "zstd",
        "cleanup.policy": "compact",
    }
    assert pipeline.topics["clean"].codec == "text"
    assert pipeline.topics["dead"].partitions == 1 and pipeline.topics["dead"].config == {}
    source = pipeline.sources["sensors"]
    assert source.connector.name == "ticker" and source.config.rate == 50
    assert source.to == ("readings",)
    assert source.where == f"{tmp_path / 'pipeline.yaml'}:9:3"
    route = pipeline.routes["tidy"]
    assert route.group == "demo.tidy"
    assert route.inputs == ("readings",) and [o.topic for o in route.outputs] == ["clean"]
    assert route.workers == 2 and route.dead_letter == "dead" and route.on_error == "dead_letter"
    assert (route.retry.max_attempts, route.retry.initial_s, route.retry.max_s) == (5, 0.1, 2.0)
    sink = pipeline.sinks["out"]
    assert sink.group == "demo.out" and sink.on_error == "stop" and sink.start == "latest"
    assert sink.dead_letter == "dead"


def test_relative_paths_in_connector_configs_are_resolved_against_the_files_folder(
    load, tmp_path: Path
) -> None:
    config = load(GOOD, name="conf/pipeline.yaml").sinks["out"].config
    assert config.path == tmp_path / "conf" / "out" / "clean.jsonl"
    assert config.extra == [tmp_path / "conf" / "a.txt", Path("/abs/b.txt")]


def test_a_relative_file_store_is_resolved_other_stores_are_kept(load, tmp_path: Path) -> None:
    assert load(GOOD, name="sub/p.yaml").store == f"file:{tmp_path / 'sub' / 'data'}"
    kept = GOOD.replace("store: file:./data", "store: kafka://broker:9092")
    assert load(kept).store == "kafka://broker:9092"
    assert load(GOOD.replace("store: file:./data\n", "")).store is None
    assert load(GOOD.replace("file:./data", "file:/var/lib/ms")).store == "file:/var/lib/ms"


def test_the_store_url_scheme_is_checked(fails) -> None:
    error = fails(GOOD.replace("file:./data", "fiel:./data"))
    assert (error.line, error.column, error.path) == (2, 8, "store")
    assert "unknown scheme" in error.message and "file:DIR" in error.message


def test_unknown_key_names_its_place_and_the_valid_keys(fails) -> None:
    error = fails(GOOD.replace("workers: 2", "wrokers: 2"))
    assert (error.line, error.column, error.path) == (17, 5, "routes.tidy.wrokers")
    assert error.message.startswith("unknown key 'wrokers'; did you mean 'workers'? valid keys:")
    assert "dead_letter" in error.message and "from" in error.message
    assert str(error).startswith(f"{error.file}:17:5: routes.tidy.wrokers: unknown key")


def test_unknown_top_level_key(fails) -> None:
    error = fails(GOOD.replace("dead_letter: dead", "dead_leter: dead"))
    assert (error.line, error.column, error.path) == (3, 1, "dead_leter")
    assert "did you mean 'dead_letter'?" in error.message


def test_bad_type_points_at_the_value(fails) -> None:
    error = fails(GOOD.replace("partitions: 4", "partitions: four"))
    assert (error.line, error.column, error.path) == (5, 26, "topics.readings.partitions")
    assert error.message == "expected a whole number, got 'four'"


def test_a_number_below_its_minimum(fails) -> None:
    error = fails(GOOD.replace("workers: 2", "workers: 0"))
    assert (error.line, error.column, error.path) == (17, 14, "routes.tidy.workers")
    assert error.message == "must be 1 or more"


def test_a_choice_outside_its_set(fails) -> None:
    error = fails(GOOD.replace("start: latest", "start: newest"))
    assert (error.line, error.column, error.path) == (25, 12, "sinks.out.start")
    assert error.message == "expected 'earliest' or 'latest', got 'newest'"


def test_bad_duration(fails) -> None:
    error = fails(GOOD.replace("initial: 100ms", "initial: 100"))
    assert (error.line, error.column, error.path) == (18, 39, "routes.tidy.retry.initial")
    assert "100 has no unit" in error.message and "200ms" in error.message
    error = fails(GOOD.replace("retention: 7d", "retention: 7days"))
    assert (error.line, error.column, error.path) == (5, 40, "topics.readings.retention")
    assert "'7days' is not a duration" in error.message and "forever" in error.message


def test_retry_initial_longer_than_max(fails) -> None:
    error = fails(GOOD.replace("max: 2s", "max: 10ms"))
    assert (error.line, error.column, error.path) == (18, 12, "routes.tidy.retry")
    assert "retry.initial must not be longer than retry.max" in error.message


def test_unknown_connector_says_did_you_mean(fails) -> None:
    error = fails(GOOD.replace("connector: ticker", "connector: tikcer"))
    assert (error.line, error.column, error.path) == (10, 16, "sources.sensors.connector")
    assert error.message == (
        "unknown source connector 'tikcer'; did you mean 'ticker'? known: poller, tail, ticker"
    )


def test_a_sink_connector_used_as_a_source(fails) -> None:
    error = fails(GOOD.replace("connector: ticker", "connector: print"))
    assert (error.line, error.column) == (10, 16)
    assert (
        error.message == "'print' is a sink connector and cannot be a source; "
        "source connectors: poller, tail, ticker"
    )


def test_bad_connector_config_key(fails) -> None:
    error = fails(GOOD.replace("{path: out/clean.jsonl,", "{paht: out/clean.jsonl,"))
    assert (error.line, error.column, error.path) == (23, 14, "sinks.out.config.paht")
    assert error.message.startswith("unknown key 'paht'; did you mean 'path'? valid keys: path,")


def test_missing_connector_config_key(fails) -> None:
    error = fails(GOOD.replace("config: {path: out/clean.jsonl, extra", "config: {extra"))
    assert (error.line, error.column, error.path) == (23, 5, "sinks.out.config")
    assert error.message == "missing required key 'path'"


def test_missing_config_altogether_points_at_the_part(fails) -> None:
    text = GOOD.replace("    config: {path: out/clean.jsonl, extra: [a.txt, /abs/b.txt]}\n", "")
    error = fails(text)
    assert (error.line, error.column, error.path) == (20, 3, "sinks.out.config")
    assert error.message == "missing required key 'path'"


def test_bad_connector_config_value_in_a_list(fails) -> None:
    error = fails(GOOD.replace("[a.txt, /abs/b.txt]", "[a.txt, {x: 1}]"))
    assert (error.line, error.column, error.path) == (23, 52, "sinks.out.config.extra[1]")


def test_secret_values_never_appear_in_messages(fails) -> None:
    text = GOOD.replace(
        "config: {path: out/clean.jsonl,", "config: {password: [hunter2-x], path: x,"
    )
    error = fails(text)
    assert (error.path, error.message) == ("sinks.out.config.password", "expected text")
    text = GOOD.replace("config: {path: out/clean.jsonl,", "config: {password: 12345678, path: x,")
    error = fails(text)
    assert (error.path, error.message) == ("sinks.out.config.password", "expected text")


def test_secret_in_a_validator_message_is_blanked(tmp_path: Path, registry) -> None:
    class Vault(Sink):
        name = "vault"

        class Config(ConnectorConfig):
            password: SecretStr

            @model_validator(mode="before")
            @classmethod
            def check(cls, data: dict) -> dict:
                raise ValueError(f"password {data['password']} is too weak")

        async def write(self, events) -> None:
            pass

    registry.sinks["vault"] = Vault
    path = tmp_path / "p.yaml"
    path.write_text(
        "pipeline: p\ntopics: {t: {}}\nsinks:\n  v:\n    connector: vault\n    from: t\n"
        "    config: {password: abc}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path, registry=registry, env={})
    assert "abc" not in str(caught.value)
    assert "password ********** is too weak" in caught.value.message


def test_unknown_codec(fails) -> None:
    error = fails(GOOD.replace("codec: text", "codec: txt"))
    assert (error.line, error.column, error.path) == (6, 33, "topics.clean.codec")
    assert error.message == "unknown codec 'txt'; did you mean 'text'? known: bytes, json, text"


def test_undeclared_topic(fails) -> None:
    error = fails(GOOD.replace("    to: clean", "    to: claen"))
    assert (error.line, error.column, error.path) == (16, 9, "routes.tidy.to")
    assert error.message == (
        "topic 'claen' is not declared under `topics:`; did you mean 'clean'? "
        "declared: readings, clean, dead"
    )


def test_undeclared_topic_in_a_list(fails) -> None:
    error = fails(GOOD.replace("from: [clean]", "from: [clean, hot]"))
    assert (error.line, error.column, error.path) == (22, 19, "sinks.out.from[1]")
    assert "topic 'hot' is not declared" in error.message


def test_undeclared_dead_letter_topics(fails) -> None:
    error = fails(GOOD.replace("dead_letter: dead", "dead_letter: dlq"))
    assert (error.line, error.column, error.path) == (3, 14, "dead_letter")
    error = fails(GOOD.replace("workers: 2", "dead_letter: nope"))
    assert (error.line, error.column, error.path) == (17, 18, "routes.tidy.dead_letter")


def test_a_topic_name_outside_the_rule(fails) -> None:
    error = fails(GOOD.replace("  clean: {partitions: 2", "  cl ean: {partitions: 2"))
    assert (error.line, error.column, error.path) == (6, 3, "topics.cl ean")
    assert "'cl ean' is not a valid topic name" in error.message


def test_a_route_writing_to_its_own_input(fails) -> None:
    error = fails(GOOD.replace("    to: clean", "    to: [clean, readings]"))
    assert (error.line, error.column, error.path) == (16, 17, "routes.tidy.to[1]")
    assert error.message == (
        "route 'tidy' writes to 'readings', which it also reads: every event would come back "
        "to it for ever; write to another topic"
    )


CYCLE = """
pipeline: loop
topics: {a: {}, b: {}, c: {}}
routes:
  first:
    from: a
    to: b
  second:
    from: b
    to:
      - {topic: c}
  third:
    from: c
    to: [a]
"""


def test_a_cycle_between_routes_is_named(fails) -> None:
    error = fails(CYCLE)
    assert (error.line, error.column, error.path) == (6, 9, "routes.first.to")
    assert error.message.startswith(
        "routes first → second → third → first form a cycle (through topics 'b', 'c', 'a')"
    )


def test_a_cycle_through_unmatched(fails) -> None:
    text = CYCLE.replace("    to: [a]", "    to: [c2]\n    unmatched: a").replace(
        "c: {}}", "c: {}, c2: {}}"
    )
    error = fails(text)
    assert error.message.startswith("routes first → second → third → first form a cycle")


def test_a_dead_letter_loop_back_is_allowed(load) -> None:
    text = CYCLE.replace("    to: [a]", "    to: [d]").replace("c: {}}", "c: {}, d: {}}")
    text += "    dead_letter: a\n"
    pipeline = load(text)
    assert pipeline.routes["third"].dead_letter == "a"


def test_a_sink_without_from(fails) -> None:
    error = fails(GOOD.replace("    from: [clean]\n", ""))
    assert (error.line, error.column, error.path) == (20, 3, "sinks.out")
    assert error.message.startswith("missing required key 'from'; name the topic(s) it reads")


def test_a_route_with_empty_from(fails) -> None:
    error = fails(GOOD.replace("from: readings", "from: []"))
    assert (error.line, error.column, error.path) == (15, 11, "routes.tidy.from")
    assert error.message == "must not be empty"


def test_a_source_without_to(fails) -> None:
    error = fails(GOOD.replace("    to: readings\n", ""))
    assert (error.line, error.column, error.path) == (9, 3, "sources.sensors")
    assert error.message.startswith("missing required key 'to'")


def test_a_name_used_twice(fails) -> None:
    error = fails(GOOD.replace("  out:\n", "  tidy:\n"))
    assert (error.line, error.column, error.path) == (20, 3, "sinks.tidy")
    assert "the name 'tidy' is used twice (routes.tidy and sinks.tidy)" in error.message


def test_missing_env_var(fails) -> None:
    error = fails(GOOD.replace("to: readings", "to: ${TO}"))
    assert (error.line, error.column, error.path) == (12, 9, "sources.sensors.to")
    assert error.message.startswith("environment variable 'TO' is not set")
    error = fails(GOOD.replace("rate: 50", 'rate: "x${RATE:?give the rate}"'))
    assert (error.line, error.column, error.path) == (11, 22, "sources.sensors.config.rate")
    assert error.message == "environment variable 'RATE' is not set or empty: give the rate"


def test_env_values_are_validated_like_written_ones(load, fails) -> None:
    text = GOOD.replace("rate: 50", 'rate: "${RATE:-7}"').replace(
        "partitions: 4", 'partitions: "${P}"'
    )
    pipeline = load(text, {"P": "3"})
    assert pipeline.sources["sensors"].config.rate == 7
    assert pipeline.topics["readings"].partitions == 3
    error = fails(text, {"P": "three"})
    assert (error.line, error.column, error.path) == (5, 26, "topics.readings.partitions")
    assert error.message == "expected a whole number, got 'three'"


def test_on_error_dead_needs_a_dead_letter_topic(fails, load) -> None:
    text = GOOD.replace("dead_letter: dead\n", "").replace("on_error: stop", "on_error: dead")
    error = fails(text)
    assert (error.line, error.column, error.path) == (23, 15, "sinks.out.on_error")
    assert "needs a dead-letter topic" in error.message
    assert load(GOOD.replace("on_error: stop", "on_error: dead_letter")).sinks["out"].on_error == (
        "dead_letter"
    )


def test_empty_and_non_mapping_files(fails) -> None:
    error = fails("# nothing\n")
    assert error.line is None and "empty" in error.message
    error = fails("- a\n- b\n")
    assert (error.line, error.column) == (1, 1) and "a mapping" in error.message


def test_a_missing_file(tmp_path: Path, registry) -> None:
    with pytest.raises(ConfigError) as caught:
        load_pipeline(tmp_path / "nope.yaml", registry=registry)
    assert str(caught.value) == f"{tmp_path / 'nope.yaml'}: no such file"


def test_tests_entries_are_kept_raw_with_positions(load) -> None:
    pipeline = load(GOOD + "tests:\n  - name: one\n    input: {x: '${X:-1}'}\n")
    assert pipeline.tests == ({"name": "one", "input": {"x": "1"}},)
    where = pipeline.positions.key(("tests", 0, "input"))
    assert (where.line, where.column) == (28, 5)


def test_pipelines_run_together_need_distinct_names(tmp_path: Path, registry) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.lstrip())
    (tmp_path / "b.yaml").write_text(GOOD.lstrip())
    with pytest.raises(ConfigError) as caught:
        load_pipelines([tmp_path / "a.yaml", tmp_path / "b.yaml"], registry=registry, env={})
    error = caught.value
    assert (error.file, error.line, error.column) == (str(tmp_path / "b.yaml"), 1, 11)
    assert "pipeline name 'demo' is also the name of" in error.message


def test_a_topic_shared_by_two_files_is_declared_alike(tmp_path: Path, registry) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.lstrip())
    (tmp_path / "b.yaml").write_text(
        GOOD.lstrip()
        .replace("pipeline: demo", "pipeline: other")
        .replace("partitions: 2, codec: text", "partitions: 3, codec: text")
    )
    with pytest.raises(ConfigError) as caught:
        load_pipelines([tmp_path / "a.yaml", tmp_path / "b.yaml"], registry=registry, env={})
    assert (caught.value.line, caught.value.column, caught.value.path) == (6, 3, "topics.clean")
    assert "declared differently" in caught.value.message
    (tmp_path / "c.yaml").write_text(GOOD.lstrip().replace("pipeline: demo", "pipeline: third"))
    both = load_pipelines([tmp_path / "a.yaml", tmp_path / "c.yaml"], registry=registry, env={})
    assert [p.name for p in both] == ["demo", "third"]


def test_a_dot_in_a_pipeline_name_is_refused(fails) -> None:
    error = fails(GOOD.replace("pipeline: demo", "pipeline: shop.eu"))
    assert (error.line, error.column, error.path) == (1, 11, "pipeline")
    assert error.message.startswith("'shop.eu' is not a valid name; use letters, digits")
    assert "consumer groups are named <pipeline>.<part>" in error.message


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ("  sensors:\n", "  eu.sensors:\n", 9),
        ("  tidy:\n", "  eu.tidy:\n", 14),
        ("  out:\n", "  eu.out:\n", 20),
    ],
)
def test_a_dot_in_a_part_name_is_refused(fails, old: str, new: str, line: int) -> None:
    error = fails(GOOD.replace(old, new))
    assert (error.line, error.column) == (line, 3)
    assert "is not a valid name" in error.message and "'.'" in error.message
    assert "<pipeline>.<part>" in error.message


def test_topic_names_may_still_hold_dots(load) -> None:
    text = GOOD.replace("  clean:", "  eu.clean:").replace("to: clean", "to: eu.clean")
    pipeline = load(text.replace("from: [clean]", "from: [eu.clean]"))
    assert "eu.clean" in pipeline.topics


def test_two_files_whose_parts_share_a_consumer_group_are_refused(tmp_path: Path, registry) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.lstrip())
    (tmp_path / "b.yaml").write_text(GOOD.lstrip().replace("pipeline: demo", "pipeline: other"))
    both = load_pipelines([tmp_path / "a.yaml", tmp_path / "b.yaml"], registry=registry, env={})
    pipelines = {p.name: p for p in both}
    # Names can no longer make two groups alike; a plan built by hand still can.
    other = pipelines["other"]
    sink = other.sinks["out"]
    object.__setattr__(sink, "group", "demo.tidy")
    with pytest.raises(ConfigError) as caught:
        check_together([pipelines["demo"], other])
    error = caught.value
    assert (error.file, error.line, error.column, error.path) == (
        str(tmp_path / "b.yaml"),
        20,
        3,
        "sinks.out",
    )
    assert error.message == (
        "sink 'out' would read in consumer group 'demo.tidy', the group of route 'tidy' in "
        f"{tmp_path / 'a.yaml'}; two parts in one group would split each other's events: "
        "rename one of them"
    )


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        # the file's dead-letter topic is what the sink reads
        (
            [("dead_letter: dead", "dead_letter: clean"), ("    on_error: stop\n", "")],
            (20, 3, "sinks.out"),
        ),
        # the sink's own dead-letter topic is what it reads
        ([("    on_error: stop", "    dead_letter: clean")], (24, 18, "sinks.out.dead_letter")),
        # the route's own
        ([("    workers: 2", "    dead_letter: readings")], (17, 18, "routes.tidy.dead_letter")),
    ],
)
def test_a_part_that_would_read_its_own_dead_letters_is_refused(
    fails, changes: list[tuple[str, str]], where: tuple[int, int, str]
) -> None:
    text = GOOD
    for old, new in changes:
        text = text.replace(old, new)
    error = fails(text)
    assert (error.line, error.column, error.path) == where
    assert "which it also reads: its failures would be fed back to it for ever" in error.message
    assert "give it another dead_letter topic" in error.message


def test_a_route_reading_the_files_dead_letter_topic_is_refused(fails) -> None:
    error = fails(GOOD.replace("dead_letter: dead", "dead_letter: readings"))
    assert (error.line, error.column, error.path) == (14, 3, "routes.tidy")
    assert error.message == (
        "route 'tidy' sends its failed events to 'readings' (the file's dead_letter), which it "
        "also reads: its failures would be fed back to it for ever; give it another "
        "dead_letter topic (`dead_letter: TOPIC` on the route), or `on_error: stop`"
    )


def test_a_part_that_stops_on_errors_may_read_the_dead_letter_topic(load) -> None:
    # sink `out` has `on_error: stop`: nothing it fails on is sent to a dead-letter topic
    pipeline = load(GOOD.replace("dead_letter: dead", "dead_letter: clean"))
    assert pipeline.sinks["out"].on_error == "stop"


def test_a_part_that_reads_the_dead_letters_with_its_own_dead_letter_topic_is_fine(load) -> None:
    text = GOOD.replace("    from: [clean]", "    from: [dead]\n    dead_letter: clean")
    assert load(text).sinks["out"].dead_letter == "clean"
