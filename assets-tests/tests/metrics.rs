//! Prometheus metrics on `metrics.addr`, scraped from a running factory: upstream's asset,
//! schematic and per-route HTTP metrics count what the requests did.

use assets_tests::free_loopback_address;
use assets_tests::replica::{Replica, fixture_environment};

#[tokio::test(flavor = "multi_thread")]
async fn a_scrape_counts_builds_cache_hits_schematics_and_requests() {
    let metrics_address = free_loopback_address();
    let mut environment = fixture_environment();
    environment.push(("IF_METRICS_ADDR".into(), metrics_address.clone()));
    let factory = Replica::start(&["serve"], &environment);
    let body = "customization:\n  extraKernelArgs: [metrics=1]\n";
    let id = factory.create_schematic(body).await;
    factory.create_schematic(body).await;
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let response = client
            .get(format!("{}/image/{id}/v1.12.0/kernel-amd64", factory.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    let scrape = client
        .get(format!("http://{metrics_address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(
        scrape.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = scrape.text().await.unwrap();
    let kernel = r#"{talos_version="v1.12.0",output_kind="kernel",arch="amd64"}"#;
    for line in [
        format!("image_factory_assets_built_total{kernel} 1"),
        format!("image_factory_assets_delivered_cached_total{kernel} 1"),
        format!("image_factory_assets_build_latency_seconds_count{kernel} 1"),
        "image_factory_schematic_create_total 1".to_string(),
        "image_factory_schematic_duplicate_create_total 1".to_string(),
        r#"http_request_duration_seconds_count{handler="/image/{schematic}/{version}/{path}",method="GET",code="200"} 2"#.to_string(),
    ] {
        assert!(text.lines().any(|got| got == line), "no {line:?} in\n{text}");
    }
    assert!(
        text.lines().any(|line| line.starts_with(
            r#"http_request_duration_seconds_count{handler="/schematics",method="POST",code="201"}"#
        )),
        "{text}"
    );
    let built: u64 = text
        .lines()
        .find_map(|line| {
            line.strip_prefix(&format!("image_factory_assets_built_bytes_total{kernel} "))
        })
        .and_then(|value| value.parse().ok())
        .expect("built bytes");
    assert!(built > 1 << 20, "a kernel of {built} bytes");
    // The API listener does not serve the metrics.
    let api = client
        .get(format!("{}/metrics", factory.base))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
}
