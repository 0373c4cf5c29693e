//! `/versions` and the per-version catalogs over HTTP, served from the fixture release.

use assets_tests::TestFactory;

async fn serve(broken: &[&str]) -> TestFactory {
    let broken: Vec<String> = broken.iter().map(|v| v.to_string()).collect();
    TestFactory::start(|config| config.build.broken_talos_versions = broken).await
}

async fn get(base: &str, path: &str) -> (u16, String, String) {
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, content_type, response.text().await.unwrap())
}

fn names(body: &str, field: &str) -> Vec<String> {
    let list: serde_json::Value = serde_json::from_str(body).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn versions_follow_the_floor_and_pre_release_rules() {
    let served = serve(&[]).await;
    let (status, content_type, body) = get(&served.base, "/versions").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; charset=utf-8");
    // v1.1.0 is below the floor, v1.12.0-alpha.1 is a pre-release of an older minor.
    assert_eq!(
        body,
        "[\"v1.9.6\",\"v1.11.5\",\"v1.12.0\",\"v1.13.0-beta.0\"]\n"
    );
    assert_eq!(get(&served.base, "/versions?broken=true").await.2, "[]\n");

    let served = serve(&["1.11.5"]).await;
    assert_eq!(
        get(&served.base, "/versions").await.2,
        "[\"v1.9.6\",\"v1.12.0\",\"v1.13.0-beta.0\"]\n"
    );
    assert_eq!(
        get(&served.base, "/versions?broken=true").await.2,
        "[\"v1.11.5\"]\n"
    );
    let (status, _, body) = get(&served.base, "/version/v1.11.5/extensions/official").await;
    assert_eq!(
        (status, body.as_str()),
        (404, "version 1.11.5 is not available\n")
    );
}

#[tokio::test]
async fn extensions_per_version() {
    let served = serve(&[]).await;
    let (status, _, body) = get(&served.base, "/version/v1.12.0/extensions/official").await;
    assert_eq!(status, 200);
    assert_eq!(
        names(&body, "name"),
        [
            "siderolabs/amd-ucode",
            "siderolabs/gvisor",
            "siderolabs/dummy-driver",
            "siderolabs/realtek-firmware"
        ]
    );
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let first = &list[0];
    assert_eq!(
        first["ref"],
        "ghcr.io/siderolabs/amd-ucode:20250509-v1.12.0"
    );
    assert!(first["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(first["author"], "Sidero Labs");
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "ref", "digest", "author", "description"]);

    // The oldest version's catalog has no extension that needs usr-merged paths; a version
    // given without `v` is the same version.
    let (_, _, body) = get(&served.base, "/version/1.9.6/extensions/official").await;
    assert_eq!(
        names(&body, "name"),
        [
            "siderolabs/amd-ucode",
            "siderolabs/gvisor",
            "siderolabs/dummy-driver"
        ]
    );

    let (status, _, body) = get(&served.base, "/version/v1.10.0/extensions/official").await;
    assert_eq!(
        (status, body.as_str()),
        (404, "version 1.10.0 is not available\n")
    );
    let (status, _, body) = get(&served.base, "/version/v1.x/extensions/official").await;
    assert_eq!(status, 400);
    assert!(body.contains("v1.x"), "{body}");
}

#[tokio::test]
async fn overlays_per_version() {
    let served = serve(&[]).await;
    let (status, _, body) = get(&served.base, "/version/v1.12.0/overlays/official").await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "rpi_generic",
            "qemu_arm64",
            "fails",
            "sleeps",
            "escapes",
            "no-installer"
        ]
    );
    assert_eq!(list[1]["image"], "siderolabs/sbc-fixture");
    assert_eq!(list[0]["name"], "rpi_generic");
    assert_eq!(list[0]["image"], "siderolabs/sbc-raspberrypi");
    assert_eq!(list[0]["ref"], "ghcr.io/siderolabs/sbc-raspberrypi:v0.1.0");
    // Before 1.7 there are no overlays, whether or not the version exists.
    assert_eq!(
        get(&served.base, "/version/v1.6.0/overlays/official")
            .await
            .2,
        "[]\n"
    );
}
