"""docker-compose.yml and the Dockerfiles under infra/docker, checked without a Docker engine.

What a build or `up` would trip over is checked from the files themselves: the compose file parses (with
Debian's `docker-compose` 1.29 and as YAML), services wait for what they need to be healthy, every build
context, Dockerfile and COPY source exists and is not dropped by .dockerignore, every command names a file
or console script that exists and lands in the image, the topic init creates exactly the topics the
orchestrator would (run for real with a stand-in for kafka-topics.sh), and the worker profiles are right.
No network, no engine: fast.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import typer
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
APT_HINT = "apt-get install -y --no-install-recommends docker-compose"

INFRA = ("kafka", "postgres", "redis")
WORKERS = {"worker-python": "python", "worker-node": "node", "worker-java": "java"}
SERVICES = {*INFRA, "topics", "orchestrator", *WORKERS}
# Every built image (all services but the one-shot topic init, which reuses Kafka's) starts from Debian only:
# what a Docker Hub-less machine can make with debootstrap (infra/debian-base.sh) is what users pull.
BASE = "debian:bookworm-slim"
BUILT = {*INFRA, "orchestrator", *WORKERS}
MULTI_STAGE = {"kafka", "orchestrator", *WORKERS}
WAIT_CONDITIONS = {"service_healthy", "service_completed_successfully"}


# ----------------------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "docker-compose.yml has no services"
    return data


def _svc(compose: dict[str, Any], name: str) -> dict[str, Any]:
    return compose["services"][name]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    return " ".join(test) if isinstance(test, list) else str(test or "")


@dataclass
class Stage:
    base: str
    name: str | None
    workdir: str = "/"
    # (sources relative to the build context, destination in the image) of COPY/ADD without --from
    copies: list[tuple[list[str], str]] = field(default_factory=list)
    # (stage, source in that stage, destination) of COPY --from
    copies_from: list[tuple[str, str, str]] = field(default_factory=list)
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    run: list[str] = field(default_factory=list)


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, f"{dockerfile}: dangling line continuation"
    return out


def _resolve(workdir: str, path: str) -> str:
    return str(PurePosixPath(workdir, path)) if not path.startswith("/") else str(PurePosixPath(path))


def _exec_form(dockerfile: Path, instruction: str, args: str) -> list[str]:
    # Exec form keeps the process PID 1, so `docker stop`'s SIGTERM reaches the worker's graceful drain.
    assert args.startswith("["), f"{dockerfile}: {instruction} must use the exec (JSON) form, got {args!r}"
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def parse_dockerfile(dockerfile: Path) -> list[Stage]:
    stages: list[Stage] = []
    for instruction, args in _instructions(dockerfile):
        if instruction == "FROM":
            parts = args.split()
            stages.append(Stage(parts[0], parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None))
            continue
        assert stages, f"{dockerfile}: {instruction} before FROM"
        stage = stages[-1]
        if instruction == "WORKDIR":
            stage.workdir = _resolve(stage.workdir, args)
        elif instruction in ("COPY", "ADD"):
            words = json.loads(args) if args.startswith("[") else shlex.split(args)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            assert len(paths) >= 2, f"{dockerfile}: {instruction} {args}"
            *srcs, dest = paths
            dest = _resolve(stage.workdir, dest) + ("/" if dest.endswith("/") else "")
            from_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            if from_stage is None:
                stage.copies.append((srcs, dest))
            else:
                stage.copies_from.extend((from_stage, s, dest) for s in srcs)
        elif instruction == "CMD":
            stage.cmd = _exec_form(dockerfile, instruction, args)
        elif instruction == "ENTRYPOINT":
            stage.entrypoint = _exec_form(dockerfile, instruction, args)
        elif instruction == "RUN":
            stage.run.append(args)
    assert stages, f"{dockerfile}: no FROM"
    return stages


def _built(compose: dict[str, Any]) -> dict[str, tuple[Path, Path]]:
    """service -> (build context, Dockerfile) for every service that builds an image."""
    out = {}
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = (ROOT / build.get("context", ".")).resolve()
        out[name] = (context, context / build.get("dockerfile", "Dockerfile"))
    return out


def _bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host path of a service's bind mounts (short syntax: ./src:/target[:mode])."""
    parts = [str(m).split(":") for m in service.get("volumes") or []]
    return {p[1]: p[0] for p in parts if p[0].startswith(".")}


def _image_source(stage: Stage, context: Path, image_path: str) -> Path | None:
    """The file of the build context that a COPY puts at `image_path` in the final image, if any."""
    for srcs, dest in stage.copies:
        for src in srcs:
            target = dest + PurePosixPath(src).name if dest.endswith("/") or len(srcs) > 1 else dest
            target = target.rstrip("/")
            if image_path == target:
                return context / src
            if image_path.startswith(target + "/"):
                return context / src / image_path[len(target) + 1 :]
    return None


def _dockerignore_patterns() -> list[re.Pattern[str]]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    assert not [p for p in patterns if p.startswith("!")], "this checker does not model '!' exceptions"
    compiled = []
    for pattern in patterns:
        p, rx, i = pattern.strip("/"), "", 0
        while i < len(p):
            if p.startswith("**/", i):
                rx, i = rx + "(?:.*/)?", i + 3
            elif p.startswith("**", i):
                rx, i = rx + ".*", i + 2
            elif p[i] == "*":
                rx, i = rx + "[^/]*", i + 1
            elif p[i] == "?":
                rx, i = rx + "[^/]", i + 1
            else:
                rx, i = rx + re.escape(p[i]), i + 1
        compiled.append(re.compile(rx + r"(?:/.*)?\Z"))  # an excluded directory excludes its contents
    return compiled


def _ignored(patterns: list[re.Pattern[str]], rel: str) -> bool:
    return any(p.match(rel) for p in patterns)


# ------------------------------------------------------------------------------- 1. the file parses
def test_docker_compose_config_accepts_the_file() -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        where = "this CI image" if os.environ.get("CI") == "true" else "this machine"
        pytest.fail(
            f"`docker-compose` is not installed on {where}; the compose file is validated with it. "
            f"Install it with `{APT_HINT}` (without that flag apt pulls the whole Docker engine).",
            pytrace=False,
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    # --profile all: the flag the Makefile targets use must be known to this docker-compose, too.
    proc = subprocess.run(
        [exe, "-f", str(COMPOSE_FILE), "--profile", "all", "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"docker-compose config failed:\n{proc.stdout}{proc.stderr}"


def test_compose_structure(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    volumes = compose.get("volumes") or {}
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, f"{name}: neither image nor build"
        assert not isinstance(svc.get("depends_on"), list), f"{name}: depends_on must name conditions"
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            condition = (spec or {}).get("condition")
            assert condition in WAIT_CONDITIONS, f"{name} -> {dep}: condition {condition!r}"
            if condition == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep} to be healthy: it has no healthcheck"
            else:
                assert services[dep].get("restart", "no") == "no", f"{dep} is one-shot: restart must be 'no'"
        for mount in svc.get("volumes") or []:
            source = str(mount).split(":", 1)[0]
            if source.startswith((".", "/", "~")):
                assert source.startswith("./"), f"{name}: bind mount {source!r} must be relative to the repo"
                assert (ROOT / source).exists(), f"{name}: bind mount source {source} is missing"
            else:
                assert source in volumes, f"{name}: volume {source!r} is not declared under top-level volumes"

    for name in (*INFRA, "orchestrator"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in ("topics", "orchestrator", *WORKERS):
        conditions = {d: s["condition"] for d, s in services[name]["depends_on"].items()}
        assert conditions.get("kafka") == "service_healthy", f"{name} must wait for a healthy kafka"
        if name != "topics":
            assert conditions.get("topics") == "service_completed_successfully", f"{name} must wait for topics"
    orch_deps = services["orchestrator"]["depends_on"]
    assert {d for d in INFRA if orch_deps.get(d, {}).get("condition") == "service_healthy"} == set(INFRA)

    kafka = services["kafka"]
    assert kafka["image"] == "baton/kafka:local", kafka["image"]
    assert services["topics"]["image"] == kafka["image"], "the topic init uses the broker's image and tools"
    assert services["topics"]["build"] == kafka["build"], "either service builds the same image"
    kenv = _env(kafka)
    assert kenv["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kenv["KAFKA_NODE_ID"]
    assert "PLAINTEXT://kafka:9092" in kenv["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert kenv["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert kenv["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    for key in ("OFFSETS_TOPIC_REPLICATION_FACTOR", "TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert kenv[f"KAFKA_{key}"] == "1", key
    assert f"kafka-data:{kenv['KAFKA_LOG_DIRS']}" in kafka["volumes"], "Kafka's log dir must be the named volume"
    assert re.search(
        r"kafka-(broker-api-versions|topics)\.sh --bootstrap-server localhost:9092", _healthcheck_text(kafka)
    )

    pg = services["postgres"]
    assert pg["image"] == "baton/postgres:local" and _env(pg)["POSTGRES_DB"] == "baton"
    assert "pg_isready" in _healthcheck_text(pg)
    assert "postgres-data:/var/lib/postgresql/data" in pg["volumes"]
    redis = services["redis"]
    assert redis["image"] == "baton/redis:local" and "redis-cli ping" in _healthcheck_text(redis)
    for name in WORKERS:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"

    orch = services["orchestrator"]
    oenv = _env(orch)
    assert oenv["BATON_DATABASE_URL"] == "postgresql://baton:baton@postgres:5432/baton"
    assert oenv["BATON_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert oenv["BATON_REDIS_URL"].startswith("redis://redis:6379")
    assert any(str(p).endswith(":8080") for p in orch["ports"]), "the API's port 8080 is published"
    assert "http://127.0.0.1:8080/health" in _healthcheck_text(orch)
    for name in WORKERS:
        assert _env(services[name])["BATON_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name


# ------------------------------------------------------------------ 2. build contexts and Dockerfiles
def test_build_contexts_and_dockerfiles_exist(compose: dict[str, Any]) -> None:
    built = {name: spec for name, spec in _built(compose).items() if name != "topics"}
    assert set(built) == BUILT, "every image is built from source and Debian's packages"
    for name, (context, dockerfile) in built.items():
        assert context.is_dir(), f"{name}: build context {context} is missing"
        assert context == ROOT, f"{name}: the build context is the repository root (so .dockerignore applies)"
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        stages = parse_dockerfile(dockerfile)
        assert len(stages) >= 2 or name not in MULTI_STAGE, f"{name}: not a multi-stage build"
        assert {s.base for s in stages} == {BASE}, f"{name}: every stage is FROM {BASE}"
        assert compose["services"][name]["image"] == f"baton/{name}:local", f"{name}: tag baton/{name}:local"
        names = {s.name for s in stages}
        for stage in stages:
            for from_stage, _, _ in stage.copies_from:
                assert from_stage in names, f"{name}: COPY --from={from_stage} names no stage"


# ------------------------------------------------------------------------ 3. what Dockerfiles COPY
def test_dockerfile_copy_sources_exist_and_reach_the_context(compose: dict[str, Any]) -> None:
    patterns = _dockerignore_patterns()
    must_exclude = ".venv .git .stack bench/results sdk-node/node_modules sdk-node/dist sdk-java/target"
    for rel in [*must_exclude.split(), "examples/java/target", "orchestrator/baton_orchestrator.egg-info"]:
        rel += "/x"
        assert _ignored(patterns, rel), f".dockerignore must exclude {rel.rsplit('/', 1)[0]}"
    for name, (context, dockerfile) in _built(compose).items():
        for stage in parse_dockerfile(dockerfile):
            for srcs, _ in stage.copies:
                for src in srcs:
                    matches = list(context.glob(src)) if any(c in src for c in "*?[") else [context / src]
                    assert matches and all(m.exists() for m in matches), f"{name}: COPY {src}: not in the repo"
                    for m in matches:
                        rel = m.relative_to(context).as_posix()
                        assert not _ignored(patterns, rel), f"{name}: COPY {src}: excluded by .dockerignore"


# ------------------------------------------------------------- 4. commands name entrypoints that exist
def _argv(compose: dict[str, Any], name: str) -> tuple[list[str], Stage, Path]:
    """The argv a service's container runs (compose entrypoint/command over the image's), its final stage."""
    context, dockerfile = _built(compose)[name]
    final = parse_dockerfile(dockerfile)[-1]
    svc = _svc(compose, name)
    entrypoint = svc.get("entrypoint", final.entrypoint) or []
    command = svc.get("command", final.cmd if "entrypoint" not in svc else None) or []
    for part in (entrypoint, command):
        assert isinstance(part, list), f"{name}: use the list form for entrypoint/command"
    return [*entrypoint, *command], final, context


def test_orchestrator_runs_the_baton_console_script(compose: dict[str, Any]) -> None:
    argv, final, _ = _argv(compose, "orchestrator")
    pyproject = tomllib.loads((ROOT / "orchestrator/pyproject.toml").read_text(encoding="utf-8"))
    scripts = pyproject["project"]["scripts"]
    assert argv[0] in scripts, f"{argv[0]!r} is not a console script of orchestrator/pyproject.toml"
    module, _, func = scripts[argv[0]].partition(":")
    cli = __import__(module, fromlist=[func])
    assert callable(getattr(cli, func))
    # The typer app parses the compose command as the container would run it (a bad option fails here).
    command = typer.main.get_command(cli.app)
    assert argv[1] == "server", argv
    server = command.get_command(command.make_context("baton", ["server"]), "server")  # type: ignore[attr-defined]
    params = server.make_context("server", list(argv[2:])).params
    assert (params["host"], params["port"]) == ("0.0.0.0", 8080)
    assert final.cmd == argv[1:], "the image's default CMD and the compose command agree"
    health = _svc(compose, "orchestrator")["healthcheck"]["test"]
    script = next(a for a in health if a.endswith(".py"))
    assert (src := _image_source(final, ROOT, script)) and src.is_file(), f"healthcheck script {script} not copied"


@pytest.mark.parametrize(
    ("service", "script"), [("worker-python", "examples/python/worker.py"), ("worker-node", "examples/node/worker.mjs")]
)
def test_script_workers_run_the_example_files(compose: dict[str, Any], service: str, script: str) -> None:
    argv, final, context = _argv(compose, service)
    assert argv[1:] == [script], f"{service}: runs {argv}"
    assert final.cmd == argv, f"{service}: the image's CMD and the compose command agree"
    src = _image_source(final, context, _resolve(final.workdir, script))
    assert src is not None and src.resolve() == (ROOT / script).resolve() and src.is_file(), f"{script} not in image"
    if service == "worker-node":
        readme = (ROOT / "examples/node/README.md").read_text(encoding="utf-8")
        assert " ".join(argv) in readme, "run the Node example exactly as examples/node/README.md says"
        # Its relative imports must resolve inside the image: the SDK's build output and the sibling modules.
        image_dir = PurePosixPath(_resolve(final.workdir, script)).parent
        # Static imports and dynamic ones (the tracing setup is loaded with import() only when asked for).
        text = src.read_text(encoding="utf-8")
        specs = re.findall(r"""^import .* from '(\.[^']+)'""", text, re.M)
        specs += re.findall(r"""import\(\s*'(\.[^']+)'\s*\)""", text)
        assert "./tracing.mjs" in specs, "worker.mjs loads its tracing setup"
        # ... whose OpenTelemetry packages are the example's own (examples/node/package.json), built in a stage.
        packages = os.path.normpath(str(image_dir / "node_modules"))
        assert any(d.rstrip("/") == packages for _, _, d in final.copies_from), f"{packages} is not in the image"
        for spec in specs:
            target = os.path.normpath(str(image_dir / spec))
            if _image_source(final, context, target) is not None:
                continue
            built = [d for _, s, d in final.copies_from if target.startswith(d.rstrip("/") + "/")]
            assert built, f"worker.mjs imports {spec}: {target} is not in the image"
            ts = ROOT / "sdk-node" / "src" / PurePosixPath(target).with_suffix(".ts").name
            assert ts.is_file(), f"{target} is built from {ts}, which is missing"


def test_java_worker_runs_the_example_main_class(compose: dict[str, Any]) -> None:
    argv, _, _ = _argv(compose, "worker-java")
    assert argv[:2] == ["java", "-jar"], argv
    run = " ".join(r for stage in parse_dockerfile(_built(compose)["worker-java"][1]) for r in stage.run)
    main_class = re.search(r"--main-class[ =]([\w.]+)", run)
    assert main_class, "the jar's Main-Class is set in the Dockerfile"
    source = ROOT / "examples/java/src/main/java" / (main_class.group(1).replace(".", "/") + ".java")
    assert source.is_file(), f"main class source {source.relative_to(ROOT)} is missing"
    assert re.search(r"public\s+static\s+void\s+main\s*\(", source.read_text(encoding="utf-8"))
    assert "examples/java/pom.xml" in run and "sdk-java/pom.xml" in run, "builds the SDK, then the example"


def test_topics_init_runs_a_script_from_the_repo(compose: dict[str, Any]) -> None:
    svc = _svc(compose, "topics")
    script = next(a for a in svc["entrypoint"] if a.endswith(".sh"))
    source = _bind_mounts(svc).get(script)
    assert source and (ROOT / source).is_file(), f"{script} is not mounted from a file in the repo"
    assert "kafka-topics.sh" in (ROOT / source).read_text(encoding="utf-8")
    proc = subprocess.run(["bash", "-n", str(ROOT / source)], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------- 5. topics == orchestrator's topics
FAKE_KAFKA_TOPICS = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$FAKE_LOG"
if [[ " $* " == *" --list "* ]]; then cat "$FAKE_EXISTING"; fi
"""


def _run_topics_init(compose: dict[str, Any], tmp_path: Path, existing: list[str]) -> list[list[str]]:
    fake, log, have = tmp_path / "kafka-topics.sh", tmp_path / "calls.log", tmp_path / "existing.txt"
    fake.write_text(FAKE_KAFKA_TOPICS)
    fake.chmod(0o755)
    log.write_text("")
    have.write_text("".join(f"{t}\n" for t in existing))
    svc = _svc(compose, "topics")
    script = ROOT / _bind_mounts(svc)[next(a for a in svc["entrypoint"] if a.endswith(".sh"))]
    env = {**_env(svc), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KAFKA_TOPICS_SH": str(fake)}
    env |= {"FAKE_LOG": str(log), "FAKE_EXISTING": str(have)}
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, f"create-topics.sh failed:\n{proc.stdout}{proc.stderr}"
    return [shlex.split(line) for line in log.read_text().splitlines()]


def _workflow_actions() -> set[str]:
    actions = set()
    for path in sorted((ROOT / "examples/workflows").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        actions |= {step["action"] for step in doc["steps"]}
    return actions


def test_topics_init_creates_the_orchestrators_topics(
    compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from baton_orchestrator.bus.kafka import Topics
    from baton_orchestrator.settings import Settings

    for key in [k for k in os.environ if k.startswith("BATON_")]:
        monkeypatch.delenv(key)  # the orchestrator's defaults, not whatever the shell exports
    defaults = Settings(topic_prefix="workflow-")
    actions = _workflow_actions()
    assert actions >= {"step1", "step2", "py.validate", "py.report", "node.enrich", "java.score"}
    expected = {defaults.results_topic, defaults.results_dlt_topic, defaults.jobs_dlt_topic, defaults.workers_topic}
    expected |= {defaults.job_topic(a) for a in actions}
    # The rule the orchestrator creates topics with (bus/kafka.py): payload limit + envelope.
    max_message_bytes = Topics(defaults)._configs["max.message.bytes"]
    assert max_message_bytes == str(defaults.max_payload_bytes + 65_536)

    calls = _run_topics_init(compose, tmp_path, existing=[])
    creates = [c for c in calls if "--create" in c]
    created = {}
    for call in creates:
        opts = dict(itertools.pairwise(call))  # each flag -> the word after it
        created[opts["--topic"]] = opts
        assert opts["--bootstrap-server"] == "kafka:9092"
        assert opts["--partitions"] == str(Settings().topic_partitions), call
        assert opts["--replication-factor"] == "1", call
        assert opts["--config"] == f"max.message.bytes={max_message_bytes}", call
        assert "--if-not-exists" in call
    assert len(creates) == len(created), "a topic was created twice"
    assert set(created) == expected

    # The orchestrator in compose runs with the same topic settings the init used.
    for key, value in _env(_svc(compose, "orchestrator")).items():
        monkeypatch.setenv(key, value)
    running = Settings()
    assert (running.topic_prefix, running.topic_partitions, running.max_payload_bytes) == (
        defaults.topic_prefix,
        defaults.topic_partitions,
        defaults.max_payload_bytes,
    )
    for name in WORKERS:
        assert _env(_svc(compose, name))["BATON_TOPIC_PREFIX"] == running.topic_prefix, name

    # A second `up` creates nothing: existing topics are left alone.
    again = _run_topics_init(compose, tmp_path, existing=sorted(expected))
    assert [c for c in again if "--create" in c] == []


# -------------------------------------------------------------------------------------- 6. profiles
def test_profiles(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if name in WORKERS:
            assert set(svc.get("profiles") or ()) == {WORKERS[name], "all"}, name
        else:
            assert not svc.get("profiles"), f"{name} is always on: no profile"
