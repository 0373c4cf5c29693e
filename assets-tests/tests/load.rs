//! Load on loopback, bounded: 64 concurrent cold requests for one asset run one build and get
//! identical bytes; 8 cold requests for different assets keep to `build.maxConcurrency`; 500
//! concurrent downloads of a cached 4 GB sparse image beside 1000 small requests get no error;
//! and the server's peak RSS stays under 512 MiB throughout.

use assets_tests::replica::{Replica, fixture_environment};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

const VERSION: &str = "v1.12.0";
const MAX_CONCURRENCY: usize = 2;
const RSS_BOUND: u64 = 512 << 20;

async fn digest_of(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let mut response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if response.status() != 200 {
        return Err(format!("{url}: {}", response.status()));
    }
    let mut hasher = Sha256::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        hasher.update(&chunk);
    }
    Ok(image_factory::hex::encode(&hasher.finalize()))
}

/// The most builds that ran at once, replayed from the `build started` and `asset built`
/// lines of the log (in the order the server wrote them).
fn most_builds_at_once(log: &[String]) -> usize {
    let (mut running, mut most) = (0usize, 0usize);
    for line in log {
        if line.contains("build started") {
            running += 1;
            most = most.max(running);
        } else if line.contains("asset built") {
            running = running.saturating_sub(1);
        }
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cold_and_cached_load_stays_correct_and_small() {
    let mut environment = fixture_environment();
    environment.push((
        "IF_BUILD_MAXCONCURRENCY".into(),
        MAX_CONCURRENCY.to_string(),
    ));
    let factory = Replica::start(&["serve"], &environment);
    let client = reqwest::Client::new();
    let boot =
        std::fs::read_to_string(assets_tests::workspace().join("fixtures/schematics/boot.yaml"))
            .expect("boot.yaml");
    let id = factory.create_schematic(&boot).await;

    // 64 concurrent cold requests for one asset: one build, one set of bytes.
    let url = format!("{}/image/{id}/{VERSION}/metal-amd64.raw.zst", factory.base);
    let started = Instant::now();
    let requests: Vec<_> = (0..64)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { digest_of(&client, &url).await })
        })
        .collect();
    let mut digests = Vec::new();
    for request in requests {
        digests.push(request.await.expect("task").expect("download"));
    }
    digests.dedup();
    assert_eq!(digests.len(), 1, "64 downloads, several contents");
    assert_eq!(
        factory.count_log("build started"),
        1,
        "one build for 64 requests"
    );
    eprintln!(
        "64 concurrent cold requests: one build, {:?}",
        started.elapsed()
    );

    // 8 cold requests for different assets: never more than maxConcurrency builds at once.
    let mut ids = Vec::new();
    for index in 0..8 {
        ids.push(
            factory
                .create_schematic(&format!(
                    "customization:\n  extraKernelArgs:\n    - load.test={index}\n"
                ))
                .await,
        );
    }
    let started = Instant::now();
    let requests: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(index, id)| {
            let asset = ["metal-amd64.raw.zst", "metal-amd64.iso"][index % 2];
            let url = format!("{}/image/{id}/{VERSION}/{asset}", factory.base);
            let client = client.clone();
            tokio::spawn(async move { digest_of(&client, &url).await })
        })
        .collect();
    for request in requests {
        request.await.expect("task").expect("download");
    }
    let log = factory.log();
    let most = most_builds_at_once(&log);
    eprintln!(
        "8 different cold assets in {:?}, at most {most} builds at once",
        started.elapsed()
    );
    assert_eq!(factory.count_log("build started"), 9);
    assert!(
        (1..=MAX_CONCURRENCY).contains(&most),
        "{most} builds ran at once"
    );

    // A cached 4 GB sparse image, downloaded by 500 clients at once (8 MiB each, all open
    // together), beside 1000 small requests.
    let raw = format!("{}/image/{id}/{VERSION}/metal-amd64.raw", factory.base);
    let mut response = client.get(&raw).send().await.expect("GET");
    assert_eq!(response.status(), 200);
    response.chunk().await.expect("a first chunk");
    drop(response);
    let building = Instant::now();
    while factory.count_log("asset built") < 10 {
        assert!(
            building.elapsed() < Duration::from_secs(120),
            "the raw image was not cached"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let (ready, _) = tokio::sync::broadcast::channel::<()>(1);
    let downloads: Vec<_> = (0..500)
        .map(|_| {
            let client = reqwest::Client::new();
            let raw = raw.clone();
            let mut go = ready.subscribe();
            tokio::spawn(async move {
                let mut response = client.get(&raw).send().await.map_err(|e| e.to_string())?;
                if response.status() != 200 {
                    return Err(format!("{}", response.status()));
                }
                let length = response.content_length().unwrap_or(0);
                let _ = go.recv().await;
                let mut read = 0u64;
                while read < 8 << 20 {
                    match response.chunk().await.map_err(|e| e.to_string())? {
                        Some(chunk) => read += chunk.len() as u64,
                        None => return Err("the body ended early".to_string()),
                    }
                }
                Ok(length)
            })
        })
        .collect();
    // Every download has its answer's head before any reads on: 500 open at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = ready.send(());
    let small: Vec<_> = (0..1000)
        .map(|index| {
            let client = client.clone();
            let url = match index % 3 {
                0 => format!("{}/healthz", factory.base),
                1 => format!("{}/schematics/{id}", factory.base),
                _ => format!("{}/image/{id}/{VERSION}/cmdline-metal-amd64", factory.base),
            };
            tokio::spawn(async move {
                let response = client.get(&url).send().await.map_err(|e| e.to_string())?;
                match response.status().as_u16() {
                    200 => response
                        .bytes()
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    status => Err(format!("{url}: {status}")),
                }
            })
        })
        .collect();
    let mut lengths = Vec::new();
    for download in downloads {
        lengths.push(download.await.expect("task").expect("a download"));
    }
    for request in small {
        request.await.expect("task").expect("a small request");
    }
    assert!(
        lengths.iter().all(|length| *length > 4_000_000_000),
        "{lengths:?}"
    );
    let (resident, peak) = factory.resident_bytes();
    eprintln!(
        "500 downloads of a {} GB image and 1000 small requests in {:?}; RSS {} MiB, peak {} MiB",
        lengths[0] / 1_000_000_000,
        started.elapsed(),
        resident >> 20,
        peak >> 20
    );
    assert!(peak < RSS_BOUND, "peak RSS {} MiB", peak >> 20);
}
