//! The HTTP API against a real server on an ephemeral loopback port: statuses, content
//! types, bodies and the headers every route shares.

use image_factory::config::Config;
use image_factory::frontend;
use image_factory::schematic::VANILLA_ID;
use image_factory::service::Factory;
use image_factory::store::FsSchematicStore;
use reqwest::StatusCode;
use std::sync::Arc;

struct Server {
    base: String,
    client: reqwest::Client,
    _state: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(max_body: u64) -> Server {
    let state = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.dir = state.path().to_path_buf();
    config.http.max_request_body_bytes = max_body;
    let store = FsSchematicStore::open(&config.storage.dir).unwrap();
    config.container_signature.disabled = true;
    let factory = Factory::from_config(config, Arc::new(store)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(frontend::serve(listener, factory, async {
        let _ = stopped.await;
    }));
    Server {
        base,
        client: reqwest::Client::new(),
        _state: state,
        stop: Some(stop),
    }
}

impl Server {
    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

async fn assert_plain_error(response: reqwest::Response, status: StatusCode, body: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(
        header(&response, "content-type"),
        "text/plain; charset=utf-8"
    );
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert!(header(&response, "server").starts_with("Image Factory"));
    assert_eq!(response.text().await.unwrap(), body);
}

#[tokio::test]
async fn create_and_fetch_a_schematic() {
    let server = start(1 << 20).await;
    let body = include_str!("../fixtures/schematics/extensions.yaml");
    let response = server.post("/schematics", body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(&response, "content-type"), "application/json");
    let canonical = "customization:\n    extraKernelArgs:\n        - noapic\n        - nolapic\n    meta:\n        - key: 10\n          value: foo\n    systemExtensions:\n        officialExtensions:\n            - siderolabs/amd-ucode\n            - siderolabs/intel-ucode\n";
    let id = "6ba13d510dcc57f233b9b498d34a3c919c1abdd5675b46ad53cf4f2e66362f82";
    let expected = format!(
        "{{\"id\":\"{id}\",\"schematic\":{}}}\n",
        serde_json::to_string(canonical).unwrap()
    );
    assert_eq!(response.text().await.unwrap(), expected);

    let response = server.get(&format!("/schematics/{id}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/yaml");
    assert_eq!(response.text().await.unwrap(), canonical);

    // Uploading again, in another spelling, is idempotent.
    let response = server
        .post(
            "/schematics",
            r#"{"customization":{"systemExtensions":{"officialExtensions":["siderolabs/amd-ucode","siderolabs/intel-ucode"]},"meta":[{"value":"foo","key":10}],"extraKernelArgs":["noapic","nolapic"]}}"#,
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.text().await.unwrap().contains(id));
}

#[tokio::test]
async fn json_escaping_matches_go() {
    let server = start(1 << 20).await;
    let response = server
        .post(
            "/schematics",
            "customization:\n  extraKernelArgs: ['a<b>&c']",
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"- a\u003cb\u003e\u0026c\n"#),
        "Go escapes <, > and &: {text}"
    );
}

#[tokio::test]
async fn vanilla_twice_gives_the_same_id() {
    let server = start(1 << 20).await;
    for body in ["{}", "customization: {}\n"] {
        let response = server.post("/schematics", body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let text = response.text().await.unwrap();
        assert_eq!(
            text,
            format!("{{\"id\":\"{VANILLA_ID}\",\"schematic\":\"customization: {{}}\\n\"}}\n")
        );
    }
}

#[tokio::test]
async fn invalid_schematics_are_400_with_the_reason() {
    let server = start(1 << 20).await;
    let cases = [
        (
            "something:",
            "yaml: construct errors: line 1: field something not found in type schematic.Schematic\n",
        ),
        (
            "customization:\n  meta:\n    - key: 256\n      value: x\n",
            "yaml: construct errors: line 3: cannot construct !!int `256` into uint8\n",
        ),
        (
            "customization:\n  bootloader: auto\n",
            "yaml: construct errors: line 2: auto does not belong to BootloaderKind values\n",
        ),
        (
            "owner: alice\n",
            "owner field is only supported in Enterprise edition\n",
        ),
        ("", "EOF\n"),
    ];
    for (body, message) in cases {
        let response = server.post("/schematics", body).await;
        assert_plain_error(response, StatusCode::BAD_REQUEST, message).await;
    }
    // Malformed YAML names where it broke.
    let response = server
        .post("/schematics", "customization: [unclosed\n")
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = response.text().await.unwrap();
    assert!(
        text.starts_with("go-yaml load error in parser at L"),
        "{text}"
    );
    assert!(text.ends_with('\n'));
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404() {
    let server = start(1 << 20).await;
    let unknown = "0".repeat(64);
    for id in [unknown.as_str(), "aaaaaaaaaaaa", &VANILLA_ID.to_uppercase()] {
        let response = server.get(&format!("/schematics/{id}")).await;
        assert_plain_error(response, StatusCode::NOT_FOUND, "schematic not found\n").await;
    }
}

#[tokio::test]
async fn oversized_bodies_are_413_and_store_nothing() {
    let server = start(64).await;
    let body = format!("customization:\n  extraKernelArgs: [{}]\n", "x".repeat(100));
    let response = server.post("/schematics", body.clone()).await;
    assert_plain_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body too large: the limit is 64 bytes\n",
    )
    .await;
    // Without a Content-Length the limit still holds.
    let stream = futures_stream(body.into_bytes());
    let response = server
        .post("/schematics", reqwest::Body::wrap_stream(stream))
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let id = image_factory::schematic::Schematic::parse(
        format!("customization:\n  extraKernelArgs: [{}]\n", "x".repeat(100)).as_bytes(),
    )
    .unwrap()
    .id();
    let response = server.get(&format!("/schematics/{id}")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    ChunkStream {
        chunks: bytes.chunks(16).map(<[u8]>::to_vec).collect(),
    }
}

struct ChunkStream {
    chunks: std::collections::VecDeque<Vec<u8>>,
}

impl futures_core::Stream for ChunkStream {
    type Item = Result<Vec<u8>, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.chunks.pop_front().map(Ok))
    }
}

#[tokio::test]
async fn health_request_ids_routing_and_cors() {
    let server = start(1 << 20).await;
    for path in ["/healthz", "/readyz"] {
        let response = server.get(path).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(header(&response, "server").starts_with("Image Factory v"));
        assert_eq!(header(&response, "x-request-id").len(), 36, "a UUID");
        assert_eq!(response.text().await.unwrap(), "");
    }
    let response = server
        .client
        .head(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let response = server
        .client
        .get(format!("{}/healthz", server.base))
        .header("X-Request-ID", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&response, "x-request-id"), "trace-me-42");

    assert_plain_error(
        server.get("/no/such/route").await,
        StatusCode::NOT_FOUND,
        "404 page not found\n",
    )
    .await;
    let response = server
        .client
        .delete(format!("{}/schematics", server.base))
        .send()
        .await
        .unwrap();
    assert!(header(&response, "allow").contains("POST"));
    assert_plain_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed\n",
    )
    .await;

    let response = server
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/schematics/{VANILLA_ID}", server.base),
        )
        .header("Origin", "https://example.com")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "cache-control")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(header(&response, "access-control-allow-origin"), "*");
    let response = server
        .client
        .get(format!("{}/healthz", server.base))
        .header("Origin", "https://example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&response, "access-control-allow-origin"), "*");
    assert!(header(&response, "access-control-expose-headers").contains("content-disposition"));
}
