//! talosctl downloads from the fixture release's `talosctl-all` image: the list for a
//! version, each binary byte for byte with upstream's headers, `HEAD`, and the refusals
//! (unknown name, a version before talosctl-all, an unavailable version).

use assets_tests::{TestFactory, fixture_release};
use image_factory::source::layout::OciLayout;
use image_factory::source::{ImageRef, Images, Source, Verifier};

const BINARIES: &[&str] = &[
    "talosctl-darwin-amd64",
    "talosctl-darwin-arm64",
    "talosctl-freebsd-amd64",
    "talosctl-freebsd-arm64",
    "talosctl-linux-amd64",
    "talosctl-linux-arm64",
    "talosctl-linux-armv7",
    "talosctl-windows-amd64.exe",
    "talosctl-windows-arm64.exe",
];

#[tokio::test]
async fn talosctl_binaries_are_listed_and_served() {
    let factory = TestFactory::start(|_| {}).await;
    let list = factory.get("/talosctl/v1.12.0").await;
    assert_eq!(list.status(), 200);
    assert_eq!(list.headers()["content-type"], "application/json");
    let urls: Vec<String> = list.json().await.unwrap();
    let expected: Vec<String> = BINARIES
        .iter()
        .map(|name| format!("http://factory.test/talosctl/v1.12.0/{name}"))
        .collect();
    assert_eq!(urls, expected, "every binary, sorted, LICENSE left out");

    // The bytes of the image itself, read without the factory.
    let images = Images::new(
        Source::Layout(OciLayout::open(&fixture_release()).unwrap()),
        Verifier::Disabled,
    );
    let image = ImageRef::with_tag("ghcr.io", "siderolabs/talosctl-all", "v1.12.0");
    let tree = images.pull(&image, "amd64").await.unwrap().tree;
    for name in ["talosctl-linux-amd64", "talosctl-windows-arm64.exe"] {
        let response = factory.get(&format!("/talosctl/v1.12.0/{name}")).await;
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(
            response.headers()["content-disposition"],
            format!("attachment; filename=\"{name}\"")
        );
        let expected = tree.file(name).unwrap();
        assert_eq!(
            response.headers()["content-length"],
            expected.len().to_string()
        );
        assert_eq!(response.bytes().await.unwrap().as_ref(), expected, "{name}");
    }
    let head = reqwest::Client::new()
        .head(format!(
            "{}/talosctl/v1.12.0/talosctl-linux-arm64",
            factory.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        tree.file("talosctl-linux-arm64").unwrap().len().to_string()
    );

    for (path, status, body) in [
        (
            "/talosctl/v1.12.0/talosctl-plan9-amd64",
            404,
            "talosctl talosctl-plan9-amd64 not found\n",
        ),
        (
            "/talosctl/v1.12.0/LICENSE",
            404,
            "talosctl LICENSE not found\n",
        ),
        ("/talosctl/v1.12.0/..", 404, ""),
        (
            "/talosctl/v1.9.6/talosctl-linux-amd64",
            404,
            "version 1.9.6 is not available\n",
        ),
        (
            "/talosctl/v1.10.0",
            404,
            "version 1.10.0 is not available\n",
        ),
    ] {
        let response = factory.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        if !body.is_empty() {
            assert_eq!(response.text().await.unwrap(), body, "{path}");
        }
    }
    let older = factory.get("/talosctl/v1.9.6").await;
    assert_eq!(older.status(), 200);
    assert_eq!(
        older.text().await.unwrap().trim(),
        "[]",
        "no talosctl-all before 1.11"
    );
}
