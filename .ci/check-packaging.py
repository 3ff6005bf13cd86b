#!/usr/bin/env python3
"""Checks the packaging files without building an image: docker-compose.yml and
docker-compose.ha.yml (with `docker compose config` when a Docker daemon is there, else
by parsing them), the configs they mount (loaded by `pinradius check-config`, so the
release binary must be built), the Dockerfile's shape, the smoke test's shell syntax,
and the systemd unit (with systemd-analyze when present). Exits non-zero naming the
first problem."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import urllib.parse

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fail(msg):
    print(f"packaging: {msg}", file=sys.stderr)
    sys.exit(1)


def check_compose():
    path = os.path.join(ROOT, "docker-compose.yml")
    with open(path) as f:
        doc = yaml.safe_load(f)
    services = doc.get("services") or fail("docker-compose.yml: no services")
    server = services.get("pinradius") or fail("docker-compose.yml: no pinradius service")
    if server.get("build") != ".":
        fail("docker-compose.yml: pinradius must build the image from the Dockerfile (build: .)")
    ports = [str(p) for p in server.get("ports", [])]
    for want in ("1812:1812/udp", "1813:1813/udp"):
        if want not in ports:
            fail(f"docker-compose.yml: pinradius.ports lacks {want!r} (has {ports})")
    if not any(str(v).endswith(":/var/lib/pinradius") for v in server.get("volumes", [])):
        fail("docker-compose.yml: pinradius needs a volume on /var/lib/pinradius")
    smoke = services.get("smoke-test") or fail("docker-compose.yml: no smoke-test service")
    script = smoke["command"][0].replace("$$", "$")
    if "radclient" not in script:
        fail("docker-compose.yml: the smoke test does not run radclient")
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(script)
    r = subprocess.run(["sh", "-n", f.name], capture_output=True, text=True)
    os.unlink(f.name)
    if r.returncode != 0:
        fail(f"docker-compose.yml: smoke-test script: {r.stderr.strip()}")
    config = config_mount("docker-compose.yml", "pinradius", server)
    check_config_loads("docker-compose.yml", config)
    compose_config("docker-compose.yml")


# Where the image reads its config (Dockerfile: ENTRYPOINT --config).
IMAGE_CONFIG = "/etc/pinradius/pinradius.toml"


def compose_config(name):
    """`docker compose config` on the file when Compose is installed."""
    compose = None
    if shutil.which("docker-compose"):
        compose = ["docker-compose"]
    elif shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        compose = ["docker", "compose"]
    if compose:
        r = subprocess.run(compose + ["-f", name, "config", "-q"], cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"{' '.join(compose)} -f {name} config: {r.stderr.strip()}")
        print(f"packaging: {' '.join(compose)} -f {name} config OK")
    else:
        print(f"packaging: no docker compose; {name} checked by parsing")


def config_mount(name, service_name, service):
    """The host file a service mounts read-only over the image's config: its path."""
    mounts = [str(v).split(":") for v in service.get("volumes", [])]
    found = [m for m in mounts if len(m) >= 2 and m[1] == IMAGE_CONFIG]
    if len(found) != 1:
        fail(f"{name}: {service_name} must mount one config on {IMAGE_CONFIG} (has {service.get('volumes')})")
    source, mode = found[0][0], found[0][2] if len(found[0]) > 2 else "rw"
    if "ro" not in mode.split(","):
        fail(f"{name}: {service_name} mounts {source} writable: the config must be read-only (:ro)")
    path = os.path.normpath(os.path.join(ROOT, source))
    if not os.path.isfile(path):
        fail(f"{name}: {service_name} mounts {source}, which is not a file in the repository")
    return path


def release_binary():
    """The binary .ci/run builds first (`cargo build --release`)."""
    binary = os.environ.get("PINRADIUS_IMAGE_BINARY") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release", "pinradius"
    )
    if not os.access(binary, os.X_OK):
        fail(f"{binary} is missing: build it first (cargo build --release)")
    return binary


def check_config_loads(name, path):
    """Loads a mounted config with the binary's own `check-config`. Its database is
    not reachable from here (a path in a volume, or the compose file's PostgreSQL),
    so a copy names a new SQLite file in a temporary folder instead; every other
    section is checked as `pinradius serve` would. Returns the parsed original."""
    rel = os.path.relpath(path, ROOT)
    with open(path, "rb") as f:
        text = f.read().decode()
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        fail(f"{rel} (mounted by {name}): not TOML: {e}")
    with tempfile.TemporaryDirectory() as d:
        # A TOML basic string: JSON's escapes are TOML's.
        sqlite = "database = " + json.dumps(os.path.join(d, "check.db"))
        copy, n = re.subn(r"^database\s*=.*$", lambda _: sqlite, text, flags=re.M)
        if n != 1:
            fail(f"{rel}: expected one `database = ...` line in [server], found {n}")
        copy = re.sub(r"^database_password_file\s*=.*\n?", "", copy, flags=re.M)
        with open(os.path.join(d, "pinradius.toml"), "w") as f:
            f.write(copy)
        r = subprocess.run(
            [release_binary(), "--config", os.path.join(d, "pinradius.toml"), "check-config"],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            fail(f"{rel} (mounted by {name}): check-config: {(r.stderr or r.stdout).strip()}")
    print(f"packaging: {rel} loads (check-config, its database aside)")
    return doc


def host_port(name, service_name, port):
    """(host port, container port, protocol) of a compose port, short or long syntax."""
    if isinstance(port, dict):
        return str(port.get("published")), str(port.get("target")), port.get("protocol", "tcp")
    spec, _, proto = str(port).partition("/")
    parts = spec.split(":")
    if len(parts) < 2:
        fail(f"{name}: {service_name} port {port!r} publishes no fixed host port")
    return parts[-2], parts[-1], proto or "tcp"


def check_compose_ha():
    """docker-compose.ha.yml: PostgreSQL and two pinradius servers sharing one config
    and the database, on different host ports."""
    name = "docker-compose.ha.yml"
    with open(os.path.join(ROOT, name)) as f:
        doc = yaml.safe_load(f)
    services = doc.get("services") or fail(f"{name}: no services")
    pg = services.get("postgres") or fail(f"{name}: no postgres service")
    if not str(pg.get("image", "")).startswith("postgres:15"):
        fail(f"{name}: postgres must run the official postgres:15 image (has {pg.get('image')!r})")
    env = pg.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    if "POSTGRES_PASSWORD" in env:
        fail(f"{name}: postgres has its password in clear (POSTGRES_PASSWORD): use POSTGRES_PASSWORD_FILE and a secret")
    secrets = doc.get("secrets") or {}
    password_file = env.get("POSTGRES_PASSWORD_FILE", "")
    secret = password_file.removeprefix("/run/secrets/")
    if not password_file.startswith("/run/secrets/") or secret not in secrets or secret not in pg.get("secrets", []):
        fail(f"{name}: postgres needs POSTGRES_PASSWORD_FILE=/run/secrets/<a secret it is given> (has {password_file!r})")
    secret_file = os.path.join(ROOT, secrets[secret].get("file", ""))
    if not os.path.isfile(secret_file):
        fail(f"{name}: secret {secret}: {secrets[secret].get('file')} is not a file in the repository")
    with open(secret_file) as f:
        if not f.readline().strip():
            fail(f"{name}: secret {secret}: {secrets[secret].get('file')} has no password on its first line")
    named = doc.get("volumes") or {}
    if not any(
        str(v).split(":")[1:2] == ["/var/lib/postgresql/data"] and str(v).split(":")[0] in named
        for v in pg.get("volumes", [])
    ):
        fail(f"{name}: postgres needs a named volume on /var/lib/postgresql/data")
    if "pg_isready" not in " ".join(map(str, (pg.get("healthcheck") or {}).get("test", []))):
        fail(f"{name}: postgres needs a pg_isready health check")
    if pg.get("restart") not in ("always", "unless-stopped", "on-failure"):
        fail(f"{name}: postgres must be restarted on failure (has restart: {pg.get('restart')!r})")
    pg_user, pg_db = env.get("POSTGRES_USER", "postgres"), env.get("POSTGRES_DB") or env.get("POSTGRES_USER", "postgres")

    servers = {k: v for k, v in services.items() if k != "postgres"}
    if len(servers) != 2:
        fail(f"{name}: expected two pinradius services besides postgres (has {sorted(servers)})")
    configs, host_ports = set(), {}
    for sname, s in servers.items():
        if s.get("build") != "." or not str(s.get("image", "")).startswith("pinradius:"):
            fail(f"{name}: {sname} must build the pinradius image from the Dockerfile (build: ., image: pinradius:...)")
        configs.add(config_mount(name, sname, s))
        test = " ".join(map(str, (s.get("healthcheck") or {}).get("test", [])))
        if "probe" not in test or IMAGE_CONFIG not in test:
            fail(f"{name}: {sname} needs a health check by `pinradius --config {IMAGE_CONFIG} probe` (has {test!r})")
        if str(s.get("user", "pinradius")) in ("root", "0") or str(s.get("user", "")).startswith(("root:", "0:")):
            fail(f"{name}: {sname} must run as the image's non-root user")
        dep = s.get("depends_on")
        if not isinstance(dep, dict) or (dep.get("postgres") or {}).get("condition") != "service_healthy":
            fail(f"{name}: {sname} must wait for postgres (depends_on: postgres: condition: service_healthy)")
        if s.get("restart") not in ("always", "unless-stopped", "on-failure"):
            fail(f"{name}: {sname} must be restarted on failure (has restart: {s.get('restart')!r})")
        if secret not in s.get("secrets", []):
            fail(f"{name}: {sname} is not given the {secret} secret")
        published = {}
        for p in s.get("ports", []):
            host, target, proto = host_port(name, sname, p)
            published[(target, proto)] = host
        for want in (("1812", "udp"), ("1813", "udp")):
            if want not in published:
                fail(f"{name}: {sname} does not publish {want[0]}/{want[1]} (has {s.get('ports')})")
            host = published[want]
            if (host, want[1]) in host_ports:
                fail(f"{name}: {sname} and {host_ports[(host, want[1])]} both publish host port {host}/{want[1]}")
            host_ports[(host, want[1])] = sname
    if len(configs) != 1:
        fail(f"{name}: the servers must share one config (mount {sorted(configs)})")
    config = configs.pop()
    rel = os.path.relpath(config, ROOT)
    server = check_config_loads(name, config).get("server", {})
    # The database: the compose file's PostgreSQL, its password from the secret.
    url = urllib.parse.urlsplit(server.get("database", ""))
    if url.scheme not in ("postgres", "postgresql"):
        fail(f"{rel}: [server] database must be a postgres:// URL (has {server.get('database')!r})")
    if url.password is not None:
        fail(f"{rel}: [server] database has a password in the URL: use database_password_file")
    if url.hostname != "postgres" or url.port not in (None, 5432):
        fail(f"{rel}: [server] database must name the postgres service (postgres:5432), has {url.netloc!r}")
    if url.username != pg_user or url.path.lstrip("/") != pg_db:
        fail(f"{rel}: [server] database must be user {pg_user!r}, database {pg_db!r} (POSTGRES_USER, POSTGRES_DB)")
    if server.get("database_password_file") != password_file:
        fail(f"{rel}: [server] database_password_file must be {password_file!r}, the secret postgres reads")
    print(f"packaging: {name}: postgres, {' and '.join(sorted(servers))} on one config and database")
    compose_config(name)


def check_dockerfile():
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        text = f.read()
    froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    stages = dict((name, base) for base, name in froms)
    if "build" not in stages:
        fail(f"Dockerfile: no stage named build (found {sorted(stages)})")
    if stages.get("binary") != "${BINARY}" or not re.search(r"^ARG\s+BINARY=build\b", text, re.M):
        fail("Dockerfile: the binary must come from `FROM ${BINARY} AS binary` with `ARG BINARY=build`")
    if "slim" not in froms[-1][0]:
        fail(f"Dockerfile: runtime image {froms[-1][0]} is not a slim image")
    if not re.search(r"^HEALTHCHECK\s.*probe", text, re.M | re.S):
        fail("Dockerfile: no HEALTHCHECK by `pinradius probe`")
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    if not users or users[-1] in ("root", "0"):
        fail("Dockerfile: the runtime stage must run as a non-root USER")
    if not re.search(r"^VOLUME\s+/var/lib/pinradius", text, re.M):
        fail("Dockerfile: no VOLUME for the database")
    for port in ("1812/udp", "1813/udp"):
        if port not in text:
            fail(f"Dockerfile: EXPOSE lacks {port}")
    check_build_context(text)


def check_build_context(text):
    """The build stage sees only what it COPYs: lay those paths out in an empty
    directory and let cargo load the package there (it refuses a manifest whose
    targets, benches included, are missing) without compiling anything."""
    build_stage = next(
        (part for part in re.split(r"^FROM\s", text, flags=re.M) if re.match(r"\S+\s+AS\s+build\b", part, re.I)),
        None,
    ) or fail("Dockerfile: no build stage")
    with tempfile.TemporaryDirectory() as d:
        for line in re.findall(r"^COPY\s+(.+)$", build_stage, re.M):
            *sources, _dest = line.split()
            for src in sources:
                path = os.path.join(ROOT, src)
                if not os.path.exists(path):
                    fail(f"Dockerfile: COPY {src}: no such path in the repository")
                target = os.path.join(d, src)
                if os.path.isdir(path):
                    shutil.copytree(path, target)
                else:
                    shutil.copy(path, target)
        r = subprocess.run(["cargo", "fetch", "--locked"], cwd=d, capture_output=True, text=True)
        if r.returncode != 0:
            problem = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "cargo fetch failed"
            fail(f"Dockerfile: the build stage's files do not make a loadable package: {problem}")
    print("packaging: Dockerfile build context loads (cargo fetch --locked)")


def check_systemd():
    path = os.path.join(ROOT, "config", "pinradius.service")
    with open(path) as f:
        unit = f.read()
    for key in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "StateDirectory=pinradius"):
        if key not in unit:
            fail(f"config/pinradius.service: lacks {key}")
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        print("packaging: no systemd-analyze; unit checked for its hardening keys only")
        return
    # Verify a copy whose ExecStart names a binary that exists here.
    with tempfile.TemporaryDirectory() as d:
        copy = os.path.join(d, "pinradius.service")
        with open(copy, "w") as f:
            f.write(unit.replace("/usr/local/bin/pinradius", "/bin/true"))
        r = subprocess.run([analyze, "verify", copy], capture_output=True, text=True)
        problems = [l for l in (r.stderr + r.stdout).splitlines() if "pinradius.service" in l]
        if problems:
            fail("systemd-analyze verify: " + "; ".join(problems))
    print("packaging: systemd-analyze verify OK")


def check_examples():
    for name in ("mikrotik.rsc", "unifi.md", "openwrt-coovachilli.uci"):
        if not os.path.isfile(os.path.join(ROOT, "config", "examples", name)):
            fail(f"config/examples/{name} is missing")


check_compose()
check_compose_ha()
check_dockerfile()
check_systemd()
check_examples()
print("packaging: OK")
