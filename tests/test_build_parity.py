"""dockyardd's /build against dockerd's classic builder: each Dockerfile of tests/build_parity.py,
built by the real docker CLI (DOCKER_BUILDKIT=0) on a private dockyardd, must give the facts
recorded from dockerd 20.10 by scripts/build_parity.py (tests/data/build_parity/*.json): image
config, layer count, history texts and sizes, the file tree over busybox, the build's output, the error and
exit code of failing builds.

Where BuildKit and the classic builder differ, /build behaves as the classic builder (it is that
builder's protocol): WORKDIR creates directories as root, RUN after VOLUME writes into a throwaway
volume, every stage up to the target runs in order, ARG history shows the
declaration, HEALTHCHECK inherits unset fields, no `Cache miss` lines. Beyond the classic builder, /build accepts what BuildKit added to
the Dockerfile (COPY --chmod, RUN --mount, heredocs): the docker CLI here has no buildx, so /build
is its only way to build. `dockyard build` (its
incremental context) keeps BuildKit's behaviour (tests/test_build_exec.py, test_build_cli.py).
Accepted differences are made equal by `comparable` (COPY/ADD source hashes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.build_parity import BASE, CASES, Case, Engine, comparable, compare, expected, facts
from tests.daemon import Dockyardd, build_busybox_daemon, daemon_children_only  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def engine(daemon: Dockyardd) -> tuple[Engine, dict[str, list[Any]]]:
    """The docker CLI on the daemon, and busybox's file tree."""
    cli = Engine(daemon.env())
    return cli, cli.tree(BASE)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_like_dockerd(engine: tuple[Engine, dict[str, list[Any]]], case: Case, tmp_path: Path) -> None:
    cli, base_tree = engine
    got = facts(cli, case, tmp_path, base_tree)
    diffs = compare(comparable(expected(case)), comparable(got))
    assert not diffs, f"{case.name} ({case.note or 'no note'}):\n" + "\n".join(diffs)


def test_corpus_never_pulls() -> None:
    """No case makes a daemon reach for a registry (an unknown --from or FROM is pulled)."""
    for case in CASES:
        assert "registry-1.docker.io" not in json.dumps(expected(case)), case.name


def test_comparison_catches_differences() -> None:
    """The comparison itself: a changed history text, config value or file shows."""
    want = expected(CASES[0])
    got = {**want, "config": {**want["config"], "Cmd": ["other"]}, "history": ["x", *want["history"][1:]]}
    got["tree"] = {"changed": {**want["tree"]["changed"], "/extra": ["file", 420, 0, 0, "0"]}, "removed": []}
    diffs = compare(comparable(want), comparable(got))
    assert any("/config/Cmd" in d for d in diffs) and any("/tree/changed//extra" in d for d in diffs)
    assert any(d.startswith("/history: +x") for d in diffs), diffs
