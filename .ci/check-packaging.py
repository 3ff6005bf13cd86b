#!/usr/bin/env python3
"""Checks the packaging files without building an image: docker-compose.yml (with
`docker compose config` when a Docker daemon is there, else by parsing it), the
Dockerfile's shape, the smoke test's shell syntax, and the systemd unit (with
systemd-analyze when present). Exits non-zero naming the first problem."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

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
    compose = None
    if shutil.which("docker-compose"):
        compose = ["docker-compose"]
    elif shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        compose = ["docker", "compose"]
    if compose:
        r = subprocess.run(compose + ["config", "-q"], cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"{' '.join(compose)} config: {r.stderr.strip()}")
        print(f"packaging: {' '.join(compose)} config OK")
    else:
        print("packaging: no docker compose; docker-compose.yml checked by parsing")


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
check_dockerfile()
check_systemd()
check_examples()
print("packaging: OK")
