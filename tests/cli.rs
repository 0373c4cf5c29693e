//! The `image-factory` binary: the schematic commands, and a served schematic surviving a
//! restart of the server.

use std::io::Write;
use std::process::{Command, Stdio};
use tokio::io::{AsyncBufReadExt, BufReader};

const BINARY: &str = env!("CARGO_BIN_EXE_image-factory");
const VANILLA_ID: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

fn run(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(BINARY)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn schematic_id_of_the_vanilla_schematic() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/schematics/vanilla.yaml"
    );
    let (status, stdout, _) = run(&["schematic", "id", fixture], "");
    assert_eq!(status, 0);
    assert_eq!(stdout, format!("{VANILLA_ID}\n"));
    let (status, stdout, _) = run(&["schematic", "id", "-"], "{}");
    assert_eq!(
        (status, stdout.as_str()),
        (0, format!("{VANILLA_ID}\n").as_str())
    );
    let (status, stdout, _) = run(&["schematic", "id"], "customization: {}\n");
    assert_eq!(
        (status, stdout.as_str()),
        (0, format!("{VANILLA_ID}\n").as_str())
    );
}

#[test]
fn schematic_canonical_prints_the_hashed_bytes() {
    let (status, stdout, _) = run(
        &["schematic", "canonical"],
        "customization:\n  meta:\n    - {value: foo, key: 0xa}\n",
    );
    assert_eq!(status, 0);
    assert_eq!(
        stdout,
        "customization:\n    meta:\n        - key: 10\n          value: foo\n"
    );
}

#[test]
fn invalid_input_is_a_message_and_exit_status_1() {
    let (status, stdout, stderr) = run(&["schematic", "id"], "customization:\n  foo: 1\n");
    assert_eq!(status, 1);
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("line 2: field foo not found in type schematic.Customization"),
        "{stderr}"
    );
    let (status, _, stderr) = run(&["schematic", "id", "/nonexistent/schematic.yaml"], "");
    assert_eq!(status, 1);
    assert!(stderr.contains("/nonexistent/schematic.yaml"), "{stderr}");
}

#[test]
fn an_owner_gets_no_id_as_upstream_community_edition() {
    for command in ["id", "canonical"] {
        let (status, stdout, stderr) = run(
            &["schematic", command],
            "owner: alice
",
        );
        assert_eq!(status, 1, "schematic {command}");
        assert_eq!(stdout, "");
        assert!(
            stderr.contains("owner field is only supported in Enterprise edition"),
            "{stderr}"
        );
    }
}

struct Served {
    child: tokio::process::Child,
    base: String,
}

async fn serve(state: &std::path::Path) -> Served {
    let mut child = tokio::process::Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state)
        .env(
            "IF_ARTIFACTS_OCILAYOUT",
            concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/release"),
        )
        .env("IF_CONTAINERSIGNATURE_DISABLED", "true")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let base = loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("server starts within 30 s")
            .unwrap();
        let Some(line) = line else {
            let exit = child.wait().await.unwrap();
            panic!(
                "server exited ({exit}) before printing its address:\n{}",
                log.join("\n")
            );
        };
        log.push(line.clone());
        if let Some(at) = line.find("listening on http://") {
            let address = line[at + "listening on ".len()..]
                .split_whitespace()
                .next()
                .unwrap();
            break address.to_string();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Served { child, base }
}

async fn terminate(mut served: Served) {
    let pid = served.child.id().unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(std::time::Duration::from_secs(30), served.child.wait())
        .await
        .expect("server stops on SIGTERM")
        .unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit}");
}

#[tokio::test]
/// Needs the fixture release: start-up refuses a release source it cannot list.
async fn schematics_survive_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let served = serve(state.path()).await;
    let response = client
        .post(format!("{}/schematics", served.base))
        .body("customization:\n  extraKernelArgs: [nolapic, nomodeset]\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    terminate(served).await;

    let served = serve(state.path()).await;
    let id = "e0fb1129bbbdfb5d002e94af4cdce712a8370e850950a33a242d4c3f178c532d";
    let response = client
        .get(format!("{}/schematics/{id}", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "customization:\n    extraKernelArgs:\n        - nolapic\n        - nomodeset\n"
    );
    terminate(served).await;
}

/// `image-factory build` of `asset` from the vanilla schematic into `output`, with a state
/// directory in `work`; `configure` adds the rest. Fails the test if the build fails.
fn build(
    work: &std::path::Path,
    output: &std::path::Path,
    asset: &str,
    configure: impl FnOnce(&mut Command),
) -> std::process::Output {
    let vanilla = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/schematics/vanilla.yaml"
    );
    build_schematic(work, vanilla.as_ref(), output, asset, configure)
}

/// [`build`] of the schematic in `schematic`.
fn build_schematic(
    work: &std::path::Path,
    schematic: &std::path::Path,
    output: &std::path::Path,
    asset: &str,
    configure: impl FnOnce(&mut Command),
) -> std::process::Output {
    let mut command = Command::new(BINARY);
    command
        .args(["build", "--version", "v1.12.0", "--schematic"])
        .arg(schematic)
        .arg("--state-dir")
        .arg(work.join("state"))
        .arg("--output")
        .arg(output)
        .arg(asset);
    configure(&mut command);
    let status = command.output().unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    status
}

/// Points a command at the fixture release, verified with the fixture key.
fn fixture_sources(command: &mut Command) -> &mut Command {
    command
        .env(
            "IF_ARTIFACTS_OCILAYOUT",
            concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/release"),
        )
        .env(
            "IF_CONTAINERSIGNATURE_PUBLICKEYFILE",
            concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/keys/cosign.pub"),
        )
}

#[test]
/// Needs the fixture release (`cargo xtask fixtures`, run by `make test`).
fn built_assets_are_written_by_the_cli() {
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("cmdline");
    let status = build(work.path(), &output, "cmdline-metal-arm64", |command| {
        fixture_sources(command).args(["--progress", "json"]);
    });
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with("{\"v\":1,\"stage\":\"done\"")),
        "{stderr}"
    );
    assert!(
        std::fs::read_to_string(&output)
            .unwrap()
            .starts_with("talos.platform=metal console=ttyAMA0 console=tty0 ")
    );
    assert!(!output.with_extension("partial").exists());
}

#[test]
/// Needs the fixture release (`cargo xtask fixtures`): the CLI runs the board's installer.
fn overlay_assets_are_built_by_the_cli() {
    let work = tempfile::tempdir().unwrap();
    let schematic = work.path().join("board.yaml");
    std::fs::write(
        &schematic,
        "overlay:\n  image: siderolabs/sbc-fixture\n  name: qemu_arm64\n",
    )
    .unwrap();
    let output = work.path().join("cmdline");
    build_schematic(
        work.path(),
        &schematic,
        &output,
        "cmdline-metal-arm64",
        |command| {
            fixture_sources(command);
        },
    );
    let cmdline = std::fs::read_to_string(&output).unwrap();
    assert!(
        cmdline.contains(" console=ttyAMA0,115200 fixture.overlay=qemu_arm64 "),
        "{cmdline}"
    );
}

#[test]
/// Needs the fixture release and its Secure Boot keys (`cargo xtask fixtures`), and sbverify.
fn secure_boot_assets_are_built_by_the_cli() {
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("uki.efi");
    let root = env!("CARGO_MANIFEST_DIR");
    build(
        work.path(),
        &output,
        "metal-amd64-secureboot-uki.efi",
        |command| {
            command
                .args(["--progress", "none", "--config", "fixtures/factory.yaml"])
                .current_dir(root);
        },
    );
    let verify = Command::new("sbverify")
        .arg("--cert")
        .arg(format!("{root}/fixtures/secureboot/uki-signing-cert.pem"))
        .arg(&output)
        .output()
        .expect("sbverify runs (make deps installs sbsigntool)");
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}
