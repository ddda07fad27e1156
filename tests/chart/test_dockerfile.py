"""Dockerfile and .dockerignore: lint with hadolint and check the properties the image must have
(no Docker engine here, so nothing is built)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import chartlib

DOCKERFILE = chartlib.REPO / "Dockerfile"
DOCKERIGNORE = chartlib.REPO / ".dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def test_hadolint_clean() -> None:
    exe = Path(sys.executable).with_name("hadolint")
    proc = subprocess.run([str(exe), "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_multi_stage_with_a_dependency_layer() -> None:
    all_stages = stages()
    assert len(all_stages) >= 3
    builder = next(s for s in all_stages if s[0][1].endswith("AS builder"))
    steps = [f"{w} {a}" for w, a in builder]
    cook = next(i for i, s in enumerate(steps) if "cargo chef cook" in s)
    copy_all = next(i for i, s in enumerate(steps) if s.startswith("COPY . ."))
    build = next(i for i, s in enumerate(steps) if "cargo build --release --locked" in s)
    assert cook < copy_all < build, "dependencies must build before the sources are copied"


def test_runtime_stage_is_minimal_non_root_and_shell_free() -> None:
    runtime = stages()[-1]
    base = runtime[0][1]
    assert re.match(r"gcr\.io/distroless/(cc|static)-debian\d+", base), base
    words = [w for w, _ in runtime]
    assert "RUN" not in words, "the runtime stage has no shell to run anything"
    (user,) = [a for w, a in runtime if w == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or gid.isdigit()), user
    copies = [a for w, a in runtime if w == "COPY"]
    assert copies == ["--from=builder --chown=0:0 /out/portier /portier"], "the binary only"
    (entrypoint,) = [a for w, a in runtime if w == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["/portier"], "exec form, no shell"
    labels = " ".join(a for w, a in runtime if w == "LABEL")
    for key in ("title", "description", "version", "revision", "created", "licenses", "source"):
        assert f"org.opencontainers.image.{key}=" in labels, key


def test_chart_runs_as_the_image_user() -> None:
    (user,) = [a for w, a in stages()[-1] if w == "USER"]
    uid, _, gid = user.partition(":")
    psc = chartlib.one(chartlib.render_objects(), "Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert (psc["runAsUser"], psc["runAsGroup"]) == (int(uid), int(gid))


def test_image_ports_and_log_format_match_the_chart() -> None:
    runtime = stages()[-1]
    exposed = {int(p.split("/")[0]) for w, a in runtime if w == "EXPOSE" for p in a.split()}
    container = chartlib.one(chartlib.render_objects(), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert exposed == {p["containerPort"] for p in container["ports"]}
    env = dict(a.split("=", 1) for w, a in runtime if w == "ENV")
    args = container["args"]
    assert env["PORTIER_LOG_FORMAT"] == args[args.index("--log-format") + 1] == "json"


@pytest.mark.parametrize("path,included", [
    ("Cargo.toml", True), ("Cargo.lock", True), ("src/main.rs", True), ("benches/x.rs", True),
    ("tests/admission.rs", True), ("tools/portier-load/Cargo.toml", True),
    ("target/release/portier", False), (".git/HEAD", False), ("tests/chart/.venv/bin/python", False),
    ("charts/portier/values.yaml", False), ("deploy/portier.yaml", False),
])
def test_dockerignore_keeps_the_context_small(path: str, included: bool) -> None:
    """Evaluates .dockerignore the way Docker does (last matching pattern wins, a pattern also
    matches everything below a matched directory)."""
    import fnmatch

    def matches(pattern: str, p: str) -> bool:
        parts = p.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        pattern = pattern.rstrip("/")
        if pattern.startswith("**/"):
            return any(fnmatch.fnmatch(x, pattern[3:]) or fnmatch.fnmatch(x, pattern)
                       for pre in prefixes for x in [pre, pre.split("/")[-1]])
        return any(fnmatch.fnmatch(pre, pattern) and pre.count("/") == pattern.count("/")
                   for pre in prefixes)

    keep = True
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if matches(line.lstrip("!"), path):
            keep = negate
    assert keep == included
