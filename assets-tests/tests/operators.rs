//! What operators rely on: HTTPS from `http.certFile`/`http.keyFile` (checked with curl
//! `--cacert`, a renewed certificate taken up without a restart), JSON logs with the request
//! ID in every line logged while a request is served, and a start-up that fails at once with
//! one line naming what is wrong.

use assets_tests::replica::{Replica, config_file, fixture_environment};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const VERSION: &str = "v1.12.0";

/// A self-signed P-256 certificate for 127.0.0.1 (made by openssl, not by us).
fn certificate(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    assets_tests::run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=image-factory test",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        &key.display().to_string(),
        "-out",
        &cert.display().to_string(),
    ]));
    (cert, key)
}

/// `curl` of `url` trusting `ca`: its exit status and output.
fn curl(ca: &Path, url: &str, extra: &[&str]) -> (i32, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn https_serves_with_the_configured_pair_and_takes_up_a_renewed_one() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (first_cert, first_key) = certificate(dir.path(), "first");
    let (live_cert, live_key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(&first_cert, &live_cert).expect("copy");
    std::fs::copy(&first_key, &live_key).expect("copy");
    let mut environment = fixture_environment();
    environment.push(("IF_HTTP_CERTFILE".into(), live_cert.display().to_string()));
    environment.push(("IF_HTTP_KEYFILE".into(), live_key.display().to_string()));
    let factory = Replica::start(&["serve"], &environment);
    factory.wait_for_log("listening on https://", Duration::from_secs(10));
    let base = factory.base.replace("http://", "https://");

    let (status, output) = curl(
        &first_cert,
        &format!("{base}/healthz"),
        &["-o", "/dev/null", "-w", "%{http_code}"],
    );
    assert_eq!((status, output.as_str()), (0, "200"));
    let schematic = assets_tests::workspace().join("fixtures/schematics/boot.yaml");
    let (status, created) = curl(
        &first_cert,
        &format!("{base}/schematics"),
        &["--data-binary", &format!("@{}", schematic.display())],
    );
    assert_eq!(status, 0, "{created}");
    let id = serde_json::from_str::<serde_json::Value>(&created).expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, cmdline) = curl(
        &first_cert,
        &format!("{base}/image/{id}/{VERSION}/cmdline-metal-amd64"),
        &["-f"],
    );
    assert_eq!(status, 0, "{cmdline}");
    assert!(cmdline.contains("console=ttyS0"), "{cmdline}");

    // Without the CA, curl refuses the certificate; plain HTTP gets no answer.
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("{base}/healthz"))
        .output()
        .expect("curl runs");
    assert_eq!(output.status.code(), Some(60), "an unknown CA is refused");
    let output = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("{}/healthz", factory.base))
        .output()
        .expect("curl runs");
    assert_ne!(String::from_utf8_lossy(&output.stdout), "200");

    // A renewed pair replaces the files: new handshakes use it, without a restart.
    let (second_cert, second_key) = certificate(dir.path(), "second");
    std::fs::copy(&second_key, dir.path().join("next.key")).expect("copy");
    std::fs::copy(&second_cert, dir.path().join("next.crt")).expect("copy");
    std::fs::rename(dir.path().join("next.key"), &live_key).expect("rename");
    std::fs::rename(dir.path().join("next.crt"), &live_cert).expect("rename");
    let started = Instant::now();
    loop {
        let (status, _) = curl(
            &second_cert,
            &format!("{base}/healthz"),
            &["-o", "/dev/null"],
        );
        if status == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the renewed certificate was not taken up:\n{}",
            factory.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _) = curl(
        &first_cert,
        &format!("{base}/healthz"),
        &["-o", "/dev/null"],
    );
    assert_eq!(status, 60, "the old certificate is no longer served");
    factory.wait_for_log("TLS certificate reloaded", Duration::from_secs(5));
}

#[tokio::test]
async fn json_logs_carry_the_request_id_in_every_line_of_a_request() {
    let factory = Replica::start(&["--log-format", "json", "serve"], &fixture_environment());
    let body =
        std::fs::read_to_string(assets_tests::workspace().join("fixtures/schematics/boot.yaml"))
            .expect("boot.yaml");
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{}/schematics", factory.base))
        .header("x-request-id", "create-1")
        .body(body)
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    let id = created["id"].as_str().expect("id");
    // A cold build: its lines come from a task of its own, and still carry the ID.
    let response = client
        .get(format!(
            "{}/image/{id}/{VERSION}/kernel-amd64",
            factory.base
        ))
        .header("x-request-id", "build-2")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "build-2");
    response.bytes().await.expect("body");
    factory.wait_for_log("build-2", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(200));

    let lines: Vec<serde_json::Value> = factory
        .log()
        .iter()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"))
        })
        .collect();
    let request_of =
        |line: &serde_json::Value| line["span"]["request_id"].as_str().map(str::to_string);
    let message = |line: &serde_json::Value| {
        line["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    // Every line from the first line of a request to its `served` line carries its ID: the
    // server does nothing else meanwhile.
    for id in ["create-1", "build-2"] {
        let first = lines
            .iter()
            .position(|line| request_of(line).as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no line of {id}"));
        let served = lines
            .iter()
            .position(|line| request_of(line).as_deref() == Some(id) && message(line) == "served")
            .unwrap_or_else(|| panic!("no served line of {id}"));
        for line in &lines[first..=served] {
            assert_eq!(request_of(line).as_deref(), Some(id), "{line}");
        }
    }
    let of_build: Vec<String> = lines
        .iter()
        .filter(|line| request_of(line).as_deref() == Some("build-2"))
        .map(message)
        .collect();
    assert!(
        of_build.iter().any(|message| message == "asset built"),
        "{of_build:?}"
    );
    let of_create: Vec<String> = lines
        .iter()
        .filter(|line| request_of(line).as_deref() == Some("create-1"))
        .map(message)
        .collect();
    assert!(
        of_create
            .iter()
            .any(|message| message == "schematic created"),
        "{of_create:?}"
    );
}

/// Runs `image-factory serve` with `environment` and `args`; it must exit non-zero within
/// 40 s. Returns its standard error.
fn failed_start(args: &[&str], environment: &[(String, String)]) -> String {
    let state = tempfile::tempdir().expect("state directory");
    let mut child = Command::new(assets_tests::factory_binary())
        .arg("serve")
        .args(args)
        .arg("--listen")
        .arg(assets_tests::free_loopback_address())
        .arg("--state-dir")
        .arg(state.path())
        .env("IMAGE_FACTORY_LOG", "info")
        .envs(environment.iter().map(|(name, value)| (name, value)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("image-factory starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            panic!("image-factory {args:?} did not stop");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(!status.success(), "started despite {args:?}: {stderr}");
    stderr
}

/// The single line a failed start prints.
fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{stderr}");
    let line = lines[0];
    assert!(line.starts_with("image-factory: "), "{line}");
    line
}

#[test]
fn start_up_fails_fast_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let with = |extra: &[(&str, &str)]| {
        let mut environment = fixture_environment();
        environment.extend(
            extra
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string())),
        );
        environment
    };

    let unknown = config_file(dir.path(), "unknown.yaml", "http:\n  listenAddres: :9000\n");
    let line = failed_start(&["--config", &unknown.display().to_string()], &with(&[])).to_string();
    assert!(one_line(&line).contains("listenAddres"), "{line}");

    let duration = failed_start(&[], &with(&[("IF_HTTP_READHEADERTIMEOUT", "soon")]));
    assert!(
        one_line(&duration).contains("http.readHeaderTimeout"),
        "{duration}"
    );

    let (cert, _) = certificate(dir.path(), "tls");
    let cert = cert.display().to_string();
    let missing_key = failed_start(
        &[],
        &with(&[
            ("IF_HTTP_CERTFILE", &cert),
            ("IF_HTTP_KEYFILE", "/nonexistent/tls.key"),
        ]),
    );
    assert!(
        one_line(&missing_key).contains("http.keyFile /nonexistent/tls.key"),
        "{missing_key}"
    );
    let (_, other_key) = certificate(dir.path(), "other");
    let other_key = other_key.display().to_string();
    let mismatch = failed_start(
        &[],
        &with(&[("IF_HTTP_CERTFILE", &cert), ("IF_HTTP_KEYFILE", &other_key)]),
    );
    assert!(
        one_line(&mismatch).contains("does not belong"),
        "{mismatch}"
    );

    let unreadable = dir.path().join("cache.key");
    std::fs::write(&unreadable, "not a key").expect("write");
    let signing = failed_start(
        &[],
        &with(&[("IF_CACHE_SIGNINGKEYPATH", &unreadable.display().to_string())]),
    );
    assert!(one_line(&signing).contains("cache.key"), "{signing}");

    let public = failed_start(
        &[],
        &with(&[(
            "IF_CONTAINERSIGNATURE_PUBLICKEYFILE",
            "/nonexistent/cosign.pub",
        )]),
    );
    assert!(
        one_line(&public).contains("/nonexistent/cosign.pub"),
        "{public}"
    );

    // A registry nobody listens on, instead of the fixture layout.
    let closed = assets_tests::free_loopback_address();
    let unreachable = failed_start(
        &[],
        &[
            ("IF_ARTIFACTS_CORE_REGISTRY".to_string(), closed.clone()),
            ("IF_ARTIFACTS_CORE_INSECURE".to_string(), "true".to_string()),
            (
                "IF_CONTAINERSIGNATURE_PUBLICKEYFILE".to_string(),
                assets_tests::fixture_public_key().display().to_string(),
            ),
        ],
    );
    let line = one_line(&unreachable);
    assert!(
        line.contains("release source") && line.contains(&closed),
        "{line}"
    );
}
