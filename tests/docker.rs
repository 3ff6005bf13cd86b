//! The container image (issue 18): its health check (`pinradius probe`) against the
//! real binary, and the image built and run for real with docker-compose.yml.

mod common;

use common::{cli, stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A config on a free fixed port (the probe reads the port from the config), with a
/// loopback client.
fn config_on_free_port(dir: &Path) -> PathBuf {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = dir.join("p.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nauth_listen = \"127.0.0.1:{port}\"\nacct_listen = \"127.0.0.1:0\"\ndatabase = \"p.db\"\n\
             [[client]]\nname = \"local\"\naddress = \"127.0.0.1\"\nsecret = \"{}\"\nbusiness_id = 1\n",
            common::SECRET
        ),
    )
    .unwrap();
    path
}

#[test]
fn probe_says_whether_the_server_of_a_config_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_on_free_port(dir.path());
    let down = cli(&config, &["probe", "--timeout-ms", "300"]);
    assert!(!down.status.success());
    assert!(
        stderr(&down).contains("no answer from 127.0.0.1:"),
        "{}",
        stderr(&down)
    );
    let server = common::serve(&config);
    let up = cli(&config, &["probe"]);
    assert!(up.status.success(), "{}", stderr(&up));
    assert!(
        stdout(&up).contains("Status-Server answered in"),
        "{}",
        stdout(&up)
    );
    // A wrong secret: the server drops the probe (its Message-Authenticator fails).
    let text = std::fs::read_to_string(&config).unwrap();
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        text.replace(common::SECRET, "another-secret-0123456789"),
    )
    .unwrap();
    let dropped = cli(&wrong, &["probe", "--timeout-ms", "300"]);
    assert!(!dropped.status.success());
    // No client for 127.0.0.1: said at once.
    let remote = dir.path().join("remote.toml");
    std::fs::write(
        &remote,
        text.replace("address = \"127.0.0.1\"", "address = \"10.0.0.1\""),
    )
    .unwrap();
    let refused = cli(&remote, &["probe"]);
    assert!(
        stderr(&refused).contains("no [[client]] covers 127.0.0.1"),
        "{}",
        stderr(&refused)
    );
    drop(server);
}

/// Docker's CLI from Debian's docker.io (its BuildKit needs no buildx plugin), else
/// `docker` on PATH, when a daemon answers it. Neither: a note and a skip, or under
/// CI (`CI=true`) a failure (`.ci/run` installs docker.io and starts dockerd).
fn docker() -> Option<PathBuf> {
    let found = ["/usr/bin/docker", "docker"]
        .into_iter()
        .map(PathBuf::from)
        .find(|d| {
            Command::new(d)
                .arg("info")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no Docker daemon: .ci/run installs docker.io and starts dockerd (CI=true makes this a failure)"
        );
        eprintln!(
            "note: no Docker daemon answers (needs root and dockerd); skipping the image test"
        );
    }
    found
}

fn run(command: &mut Command) -> Output {
    command.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// A docker-compose project on the repository's docker-compose.yml, taken down with
/// its volume (and its logs printed) when dropped.
struct Project {
    name: String,
    repo: PathBuf,
}

impl Project {
    fn compose(&self, args: &[&str]) -> Output {
        run(Command::new("docker-compose")
            .current_dir(&self.repo)
            .args(["-p", &self.name, "-f", "docker-compose.yml"])
            .args(args))
    }

    /// The container of `service`.
    fn container(&self, service: &str) -> String {
        stdout(&self.compose(&["ps", "-q", service]))
            .trim()
            .to_string()
    }

    fn inspect(&self, docker: &Path, service: &str, format: &str) -> String {
        let id = self.container(service);
        stdout(&run(
            Command::new(docker).args(["inspect", "-f", format, &id])
        ))
        .trim()
        .to_string()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", text(&self.compose(&["logs", "--no-color"])));
        }
        let _ = self.compose(&["down", "-v", "--remove-orphans"]);
    }
}

/// The runtime image from the binary at hand (`PINRADIUS_IMAGE_BINARY`, the release
/// build `.ci/run` made, else this test's own build), stripped: a one-file image holding
/// it where the Dockerfile's toolchain stage leaves its build, then the Dockerfile
/// with `--build-arg BINARY=` that image (BuildKit skips the toolchain stage). The
/// context has just what the Dockerfile copies from it.
fn build_image(docker: &Path, repo: &Path) -> u64 {
    let binary = std::env::var_os("PINRADIUS_IMAGE_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(common::bin()));
    let holder = tempfile::tempdir().unwrap();
    let stripped = run(Command::new("strip")
        .arg("-o")
        .arg(holder.path().join("pinradius"))
        .arg(&binary));
    assert!(stripped.status.success(), "strip: {}", text(&stripped));
    std::fs::write(
        holder.path().join("Dockerfile"),
        "FROM scratch\nCOPY pinradius /src/target/release/pinradius\n",
    )
    .unwrap();
    let buildkit = |args: &[&str], context: &Path| {
        let built = run(Command::new(docker)
            .env("DOCKER_BUILDKIT", "1")
            .args(["build", "-q"])
            .args(args)
            .arg(context));
        assert!(
            built.status.success(),
            "docker build {args:?}: {}",
            text(&built)
        );
    };
    buildkit(&["-t", "pinradius-test-binary"], holder.path());
    let context = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(context.path().join("config")).unwrap();
    std::fs::copy(repo.join("Dockerfile"), context.path().join("Dockerfile")).unwrap();
    std::fs::copy(
        repo.join("config/docker.toml"),
        context.path().join("config/docker.toml"),
    )
    .unwrap();
    buildkit(
        &[
            "--build-arg",
            "BINARY=pinradius-test-binary",
            "-t",
            "pinradius:latest",
        ],
        context.path(),
    );
    let size = stdout(&run(Command::new(docker).args([
        "image",
        "inspect",
        "-f",
        "{{.Size}}",
        "pinradius:latest",
    ])));
    size.trim().parse().unwrap()
}

/// Containers of earlier runs of this test that were not taken down (a run killed by a
/// timeout): they would hold the published ports.
fn remove_stale_projects(docker: &Path) {
    let listed = stdout(&run(Command::new(docker).args([
        "ps",
        "-aq",
        "--filter",
        "label=com.docker.compose.project",
        "--format",
        "{{.ID}} {{.Label \"com.docker.compose.project\"}}",
    ])));
    for line in listed.lines() {
        if let Some((id, project)) = line.split_once(' ')
            && project.starts_with("pinradius-test-")
        {
            let _ = run(Command::new(docker).args(["rm", "-f", "-v", id]));
        }
    }
}

#[test]
fn the_image_passes_the_compose_smoke_test_keeps_its_data_and_stops_cleanly() {
    let Some(docker) = docker() else { return };
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let base = run(Command::new(&docker).args(["image", "inspect", "debian:bookworm-slim"]));
    assert!(
        base.status.success(),
        "no debian:bookworm-slim image: .ci/run makes one with debootstrap (Docker Hub is out of reach here)"
    );
    remove_stale_projects(&docker);
    let size = build_image(&docker, &repo);
    eprintln!("image pinradius:latest: {} MB", size / 1_000_000);
    let project = Project {
        name: format!("pinradius-test-{}", std::process::id()),
        repo,
    };
    // The smoke test: once the health check (Status-Server) passes, radclient from
    // Debian's packages logs in with a code it created.
    let smoke = project.compose(&[
        "up",
        "--no-build",
        "--abort-on-container-exit",
        "--exit-code-from",
        "smoke-test",
    ]);
    assert!(smoke.status.success(), "smoke test: {}", text(&smoke));
    assert!(
        text(&smoke).contains("smoke test: Access-Accept"),
        "{}",
        text(&smoke)
    );

    // Down and up again: the code created before is still there, and accepted.
    assert!(project.compose(&["down"]).status.success());
    assert!(
        project
            .compose(&["up", "-d", "--no-build", "pinradius"])
            .status
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = project.inspect(&docker, "pinradius", "{{.State.Health.Status}}");
        if health == "healthy" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not healthy after 60 s: {health}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let cfg = "/etc/pinradius/pinradius.toml";
    let shown = project.compose(&[
        "exec",
        "-T",
        "pinradius",
        "pinradius",
        "--config",
        cfg,
        "token",
        "show",
        "12345",
    ]);
    assert!(
        shown.status.success(),
        "the token survived down and up: {}",
        text(&shown)
    );
    let again = project.compose(&["run", "--rm", "smoke-test"]);
    assert!(
        again.status.success(),
        "accepted after down and up: {}",
        text(&again)
    );

    // Not root; the config read-only.
    let uid = project.compose(&["exec", "-T", "pinradius", "id", "-u"]);
    assert_eq!(stdout(&uid).trim(), "10001");
    let write = project.compose(&[
        "exec",
        "-T",
        "pinradius",
        "sh",
        "-c",
        &format!("echo >> {cfg}"),
    ]);
    assert!(!write.status.success(), "the config is mounted read-only");

    // SIGTERM (docker stop) ends it cleanly, well within the grace period.
    let started = Instant::now();
    assert!(
        project
            .compose(&["stop", "-t", "15", "pinradius"])
            .status
            .success()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped in {:?}",
        started.elapsed()
    );
    assert_eq!(
        project.inspect(&docker, "pinradius", "{{.State.ExitCode}}"),
        "0"
    );
    let logs = text(&project.compose(&["logs", "--no-color", "pinradius"]));
    assert!(logs.contains("shutting down"), "{logs}");
}
