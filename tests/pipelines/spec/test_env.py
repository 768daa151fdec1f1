"""${VAR} substitution: every form, escapes, nesting, and the errors with their offsets."""

from __future__ import annotations

import pytest

from millstream.pipelines.spec._env import EnvSubstitutionError, substitute

ENV = {"HOST": "db", "EMPTY": "", "PORT": "5432"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("${HOST}", "db"),
        ("${HOST}:${PORT}", "db:5432"),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${MISSING-fallback}", "fallback"),
        ("${HOST:-fallback}", "db"),
        ("${MISSING:-${HOST}-2}", "db-2"),
        ("${HOST:?needed}", "db"),
        ("$${HOST}", "${HOST}"),
        ("cost: $5 and $$", "cost: $5 and $$"),
        ("${MISSING:-}", ""),
    ],
)
def test_forms(text: str, expected: str) -> None:
    assert substitute(text, ENV) == expected


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [
        (
            "x ${NOPE}",
            2,
            "environment variable 'NOPE' is not set; set it, or give a default: ${NOPE:-default}",
        ),
        ("${EMPTY:?say why}", 0, "environment variable 'EMPTY' is not set or empty: say why"),
        ("${NOPE?}", 0, "environment variable 'NOPE' is not set"),
        ("ab${HOST", 2, "unterminated '${HOST': close it with '}' (or write $${ for a literal ${)"),
        ("${1X}", 0, "'${1X}' names no variable"),
        ("${HOST:+x}", 0, "cannot read '${HOST:+x}'"),
        ("${MISSING:-a${NOPE}}", 12, "environment variable 'NOPE' is not set"),
    ],
)
def test_errors(text: str, offset: int, message: str) -> None:
    with pytest.raises(EnvSubstitutionError) as caught:
        substitute(text, ENV)
    assert caught.value.offset == offset
    assert caught.value.message.startswith(message)
