//! A deployment on shared registries, checked against Debian's `docker-registry`: schematics
//! one replica stores are found by another (in upstream's format, as skopeo shows), disk
//! images built by one are served by another without a build and rebuilt when the registry
//! entry is tampered with, installers are pushed, signed and handed out by 307 or proxied,
//! upstream's single-dash flags configure the factory like a file, a replica killed while
//! it pushes leaves nothing half-made, and the local tier stays within its bound.

use assets_tests::replica::{Replica, config_file, fixture_environment};
use assets_tests::{LocalRegistry, TestFactory, fixture_release, layout_references, run};
use image_factory::config::{Config, RepositoryConfig};
use image_factory::sign::SigningKey;
use image_factory::source::oci::Digest;
use image_factory::store::repository::Repository;
use sha2::Digest as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const VERSION: &str = "v1.12.0";

fn repository(registry: &LocalRegistry, namespace: &str, name: &str) -> RepositoryConfig {
    RepositoryConfig {
        registry: registry.address.clone(),
        namespace: namespace.into(),
        repository: name.into(),
        insecure: false,
    }
}

fn cache_key_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("cache-signing.key");
    std::fs::write(&path, SigningKey::generate().to_pem().unwrap()).unwrap();
    path
}

fn shared(registry: &LocalRegistry, key: &Path) -> impl Fn(&mut Config) + Clone {
    let schematics = repository(registry, "image-factory", "schematics");
    let cache = repository(registry, "image-factory", "cache");
    let key = key.to_path_buf();
    move |config: &mut Config| {
        config.artifacts.schematic = schematics.clone();
        config.cache.oci = cache.clone();
        config.cache.signing_key_path = key.clone();
    }
}

fn sha256_file(path: &Path) -> String {
    use std::io::Read;
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(path).unwrap();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).unwrap();
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    image_factory::hex::encode(&hasher.finalize())
}

/// Waits until the shared tier holds a verified entry under `key`.
async fn published(factory: &TestFactory, key: &str) {
    let tier = factory
        .factory
        .builds
        .shared
        .clone()
        .expect("a shared tier");
    for _ in 0..600 {
        if tier.lookup(key).await.unwrap().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{key} was never published");
}

#[tokio::test(flavor = "multi_thread")]
async fn schematics_written_by_one_replica_are_read_by_another() {
    let registry = LocalRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let config = config_file(
        work.path(),
        "replica.yaml",
        &format!(
            "artifacts:\n  schematic:\n    registry: {}\n    namespace: image-factory\n    \
             repository: schematics\n",
            registry.address
        ),
    );
    let config = config.display().to_string();
    let environment = fixture_environment();
    let a = Replica::start(&["serve", "--config", &config], &environment);
    let b = Replica::start(&["serve", "--config", &config], &environment);
    let client = reqwest::Client::new();
    let id = a
        .create_schematic("customization:\n  extraKernelArgs:\n    - shared.by=replicas\n")
        .await;
    let canonical = client
        .get(format!("{}/schematics/{id}", a.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let from_b = client
        .get(format!("{}/schematics/{id}", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(from_b.status(), 200);
    assert_eq!(from_b.text().await.unwrap(), canonical);
    assert!(
        !b.state_dir().join("schematics").exists(),
        "B keeps no schematics of its own"
    );

    let raw = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!(
            "docker://{}/image-factory/schematics:{id}",
            registry.address
        )));
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{raw}");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.sidero.dev-image.schematic"
    );
    assert_eq!(layers[0]["digest"], format!("sha256:{id}"));
    assert_eq!(layers[0]["size"], canonical.len());
    let inspected = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!(
            "docker://{}/image-factory/schematics:{id}",
            registry.address
        )));
    assert!(inspected.contains(&format!("sha256:{id}")), "{inspected}");

    // An unknown ID is a 404 on both, and stays one while the miss is remembered.
    let unknown = "0".repeat(64);
    for replica in [&a, &b] {
        let response = client
            .get(format!("{}/schematics/{unknown}", replica.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_image_built_once_is_served_by_another_replica_and_tampering_rebuilds() {
    let registry = LocalRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let key = cache_key_file(work.path());
    let setup = shared(&registry, &key);
    let a = TestFactory::start(setup.clone()).await;
    let id = a
        .create_schematic("customization:\n  extraKernelArgs:\n    - shared.cache=1\n")
        .await;
    let path = format!("/image/{id}/{VERSION}/metal-amd64.raw.zst");
    let from_a = work.path().join("a.raw.zst");
    a.download_to(&path, &from_a).await;
    assert_eq!(a.factory.builds.started(), 1);
    let plan = a
        .factory
        .resolve(&id, VERSION, "metal-amd64.raw.zst")
        .await
        .unwrap();
    published(&a, &plan.key).await;
    let listed = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!(
            "docker://{}/image-factory/cache:{}",
            registry.address, plan.key
        )));
    assert!(listed.contains("application/data"), "{listed}");

    let b = TestFactory::start(setup.clone()).await;
    let from_b = work.path().join("b.raw.zst");
    b.download_to(&path, &from_b).await;
    assert_eq!(sha256_file(&from_a), sha256_file(&from_b), "byte-identical");
    assert_eq!(b.factory.builds.started(), 0, "B did not build");
    assert_eq!(b.factory.builds.fetched(), 1);

    // A signature by another key: the entry is a miss, rebuilt and overwritten.
    let cache = Repository::from_config(&repository(&registry, "image-factory", "cache")).unwrap();
    let digest = cache
        .registry()
        .manifest_digest(&cache.tagged(&plan.key))
        .await
        .unwrap()
        .unwrap();
    cache.sign(&SigningKey::generate(), &digest).await.unwrap();
    let c = TestFactory::start(setup.clone()).await;
    let from_c = work.path().join("c.raw.zst");
    c.download_to(&path, &from_c).await;
    assert_eq!(
        c.factory.builds.started(),
        1,
        "a foreign signature is a rebuild"
    );
    assert_eq!(c.factory.builds.fetched(), 0);
    assert_eq!(sha256_file(&from_a), sha256_file(&from_c));
    published(&c, &plan.key).await;

    // A manifest swapped under the tag has no signature at all: also a rebuild.
    let swapped = image_factory::store::repository::single_layer_image(
        "application/data",
        &Digest::of(b"not the asset"),
        13,
    );
    cache.put_blob(b"not the asset".to_vec()).await.unwrap();
    cache.put_blob(swapped.config).await.unwrap();
    cache
        .put_manifest(&swapped.manifest, Some(&plan.key))
        .await
        .unwrap();
    let d = TestFactory::start(setup).await;
    let from_d = work.path().join("d.raw.zst");
    d.download_to(&path, &from_d).await;
    assert_eq!(
        d.factory.builds.started(),
        1,
        "an unsigned manifest is a rebuild"
    );
    assert_eq!(sha256_file(&from_a), sha256_file(&from_d));
}

/// Pulls `reference` with skopeo into a layout and returns skopeo's raw index.
fn skopeo_copy(reference: &str, layout: &Path) -> serde_json::Value {
    run(Command::new("skopeo")
        .args(["copy", "-q", "--all", "--src-tls-verify=false"])
        .arg(reference)
        .arg(format!("oci:{}:installer", layout.display())));
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(reference));
    serde_json::from_str(&raw).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn installers_are_pushed_signed_and_handed_out_by_redirect_or_proxy() {
    let registry = LocalRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let key = cache_key_file(work.path());
    let internal = repository(&registry, "", "siderolabs");
    let (redirect_internal, key_path) = (internal.clone(), key.clone());
    let redirecting = TestFactory::start(move |config| {
        config.artifacts.installer.internal = redirect_internal.clone();
        config.artifacts.installer.external = redirect_internal;
        config.cache.signing_key_path = key_path;
    })
    .await;
    let id = redirecting
        .create_schematic("customization:\n  extraKernelArgs:\n    - installer.registry=1\n")
        .await;
    let host = redirecting.base.trim_start_matches("http://").to_string();
    let index = skopeo_copy(
        &format!("docker://{host}/installer/{id}:{VERSION}"),
        &work.path().join("redirected"),
    );
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);

    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = no_redirects
        .get(format!(
            "{}/v2/installer/{id}/manifests/{VERSION}",
            redirecting.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 307);
    let location = answer.headers()["location"].to_str().unwrap().to_string();
    let digest = location.rsplit('/').next().unwrap().to_string();
    assert_eq!(
        location,
        format!(
            "http://{}/v2/siderolabs/installer/{id}/manifests/{digest}",
            registry.address
        )
    );

    // The external name works on its own, and its signature verifies with the factory's
    // public key.
    let external = format!(
        "docker://{}/siderolabs/installer/{id}:{VERSION}",
        registry.address
    );
    let inspected = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(&external));
    assert_eq!(
        image_factory::hex::sha256_digest(inspected.trim_end().as_bytes()),
        digest,
        "the tag names the index the factory redirected to"
    );
    let published = Repository::from_config(&repository(&registry, "siderolabs", "installer"))
        .unwrap()
        .child(&id);
    let verifying = SigningKey::from_pem(&std::fs::read_to_string(&key).unwrap())
        .unwrap()
        .verifying_key();
    assert!(
        published
            .verify_signature(&verifying, &Digest::parse(&digest).unwrap())
            .await
            .unwrap()
    );
    let signature_tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
    run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!(
            "docker://{}/siderolabs/installer/{id}:{signature_tag}",
            registry.address
        )));

    // Proxy mode: the same command through a factory that relays, which finds the signed
    // index already published and builds nothing.
    let key_path = key.clone();
    let proxying = TestFactory::start(move |config| {
        config.artifacts.installer.internal = internal.clone();
        config.artifacts.installer.external = internal;
        config.registry.proxy = true;
        config.cache.signing_key_path = key_path;
    })
    .await;
    proxying
        .create_schematic("customization:\n  extraKernelArgs:\n    - installer.registry=1\n")
        .await;
    let proxy_host = proxying.base.trim_start_matches("http://").to_string();
    let proxied = skopeo_copy(
        &format!("docker://{proxy_host}/installer/{id}:{VERSION}"),
        &work.path().join("proxied"),
    );
    assert_eq!(proxied, index);
    let answer = no_redirects
        .get(format!(
            "{}/v2/installer/{id}/manifests/{VERSION}",
            proxying.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["docker-content-digest"], digest.as_str());
    assert_eq!(proxying.factory.builds.started(), 0, "nothing rebuilt");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_flags_configure_the_factory_like_a_file() {
    let registry = LocalRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let key = cache_key_file(work.path());
    let address = &registry.address;
    let file = config_file(
        work.path(),
        "equivalent.yaml",
        &format!(
            "http:\n  externalURL: http://factory.example/\nartifacts:\n  core:\n    \
             registry: {address}\n  schematic:\n    \
             registry: {address}\n    namespace: image-factory\n    repository: schematic\n  \
             installer:\n    internal:\n      registry: {address}\n      repository: siderolabs\n    \
             external:\n      registry: {address}\n      repository: public\ncache:\n  \
             signingKeyPath: {}\n  oci:\n    registry: {address}\n    namespace: image-factory\n    \
             repository: cache\n",
            key.display()
        ),
    );
    // The release's imagers in the registry `-image-registry` names: the version list.
    let release = fixture_release();
    let imagers: Vec<String> = layout_references(&release)
        .into_iter()
        .filter(|reference| reference.starts_with("ghcr.io/siderolabs/imager:"))
        .collect();
    registry.push_from_layout(&release, &imagers);
    let environment: Vec<_> = fixture_environment()
        .into_iter()
        .filter(|(name, _)| name != "IF_ARTIFACTS_OCILAYOUT")
        .collect();
    let from_file = Replica::start(
        &["serve", "--config", &file.display().to_string()],
        &environment,
    );
    let schematic_repository = format!("{address}/image-factory/schematic");
    let internal = format!("{address}/siderolabs");
    let external = format!("{address}/public");
    let cache = format!("{address}/image-factory/cache");
    let key_path = key.display().to_string();
    let from_flags = Replica::start(
        &[
            "-image-registry",
            address,
            "-external-url",
            "http://factory.example/",
            "-schematic-service-repository",
            &schematic_repository,
            "-installer-internal-repository",
            &internal,
            "-installer-external-repository",
            &external,
            "-cache-repository",
            &cache,
            "-cache-signing-key-path",
            &key_path,
        ],
        &environment,
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let id = from_flags
        .create_schematic("customization:\n  extraKernelArgs:\n    - configured.by=flags\n")
        .await;
    let blob = format!("/v2/installer/{id}/blobs/sha256:{}", "a".repeat(64));
    let mut answers = Vec::new();
    for replica in [&from_flags, &from_file] {
        let get = |path: String| client.get(format!("{}{path}", replica.base)).send();
        let schematic = get(format!("/schematics/{id}")).await.unwrap();
        assert_eq!(schematic.status(), 200, "the shared schematic repository");
        let schematic = schematic.text().await.unwrap();
        let key = get("/oci/cosign/signing-key.pub".into())
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let redirect = get(blob.clone()).await.unwrap();
        assert_eq!(redirect.status(), 307);
        let location = redirect.headers()["location"].to_str().unwrap().to_string();
        let pxe = get(format!("/pxe/{id}/{VERSION}/metal-amd64"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        answers.push((schematic, key, location, pxe));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(
        answers[0].2,
        format!(
            "http://{address}/v2/public/installer/{id}/blobs/sha256:{}",
            "a".repeat(64)
        )
    );
    assert!(
        answers[0].3.starts_with("#!ipxe") && answers[0].3.contains("http://factory.example/"),
        "{}",
        answers[0].3
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_while_it_pushes_leaves_nothing_half_made() {
    let registry = LocalRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let key = cache_key_file(work.path());
    let config = config_file(
        work.path(),
        "replica.yaml",
        &format!(
            "cache:\n  signingKeyPath: {}\n  oci:\n    registry: {}\n    namespace: image-factory\n    \
             repository: cache\n",
            key.display(),
            registry.address
        ),
    );
    let config = config.display().to_string();
    let environment = fixture_environment();
    let mut a = Replica::start(&["serve", "--config", &config], &environment);
    let client = reqwest::Client::new();
    let id = a
        .create_schematic("customization:\n  extraKernelArgs:\n    - killed.mid=push\n")
        .await;
    // The uncompressed image: its push takes long enough to be cut short.
    // A's build goes on without its client; A's finished local entry is the reference.
    let path = format!("/image/{id}/{VERSION}/metal-amd64.raw");
    let started = client
        .get(format!("{}{path}", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    drop(started);
    a.wait_for_log("asset built", Duration::from_secs(120));
    a.kill();
    let entries: Vec<_> = std::fs::read_dir(a.state_dir().join("assets"))
        .unwrap()
        .flatten()
        .map(|entry| entry.path().join("data"))
        .filter(|data| data.is_file())
        .collect();
    assert_eq!(entries.len(), 1, "A's finished entry");
    let from_a = entries[0].clone();
    assert_eq!(
        a.count_log("asset published"),
        0,
        "killed before the push ended"
    );
    assert_eq!(
        a.count_log("publishing to the shared cache failed"),
        0,
        "the push was under way, not failed"
    );

    let b = Replica::start(&["serve", "--config", &config], &environment);
    b.create_schematic("customization:\n  extraKernelArgs:\n    - killed.mid=push\n")
        .await;
    let served = client
        .get(format!("{}{path}", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_same_bytes(served, &from_a).await;
    assert_eq!(b.count_log("asset fetched from the shared cache"), 0);
    assert_eq!(b.count_log("asset built"), 1, "B built it itself");
}

/// Compares a response body with a file as it streams (no copy on disk, nothing hashed:
/// the images are gigabytes, mostly zeros).
async fn assert_same_bytes(response: reqwest::Response, file: &Path) {
    use futures_util::StreamExt;
    use std::io::Read;
    let mut expected = std::fs::File::open(file).unwrap();
    let length = expected.metadata().unwrap().len();
    let mut stream = response.bytes_stream();
    let (mut offset, mut buffer) = (0u64, Vec::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        buffer.resize(chunk.len(), 0);
        expected.read_exact(&mut buffer).unwrap_or_else(|error| {
            panic!("the response is longer than {}: {error}", file.display())
        });
        assert!(buffer == chunk, "bytes differ in the chunk at {offset}");
        offset += chunk.len() as u64;
    }
    assert_eq!(
        offset,
        length,
        "the response is shorter than {}",
        file.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_local_tier_stays_within_its_bound() {
    const LIMIT: u64 = 96 << 20;
    let factory = TestFactory::start(|config| config.cache.local.max_bytes = LIMIT).await;
    let work = tempfile::tempdir().unwrap();
    let mut largest = 0;
    for n in 0..20 {
        let id = factory
            .create_schematic(&format!(
                "customization:\n  extraKernelArgs:\n    - bounded.cache={n}\n"
            ))
            .await;
        let file = work.path().join("image");
        let size = factory
            .download_to(&format!("/image/{id}/{VERSION}/metal-amd64.raw.zst"), &file)
            .await;
        largest = largest.max(size);
        let usage = factory.factory.builds.cache.disk_usage();
        assert!(
            usage <= LIMIT,
            "after image {n}: {usage} bytes cached, limit {LIMIT}"
        );
    }
    assert!(largest * 2 < LIMIT, "the limit holds at least two images");
    assert_eq!(factory.factory.builds.started(), 20);
}
