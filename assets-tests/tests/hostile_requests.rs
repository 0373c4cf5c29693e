//! Hostile requests against a running `image-factory serve`: schematics built to explode,
//! oversized bodies, header injection, encoded `../` in every path parameter, Range edge
//! cases, clients that send headers a byte at a time, and a flood of idle connections. Each
//! gets a clear answer (or is cut off), and the server stays small and keeps serving.

use assets_tests::replica::{Replica, fixture_environment};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const VERSION: &str = "v1.12.0";
const MAX_CONNECTIONS: usize = 200;

fn environment(header_timeout: &str) -> Vec<(String, String)> {
    let mut environment = fixture_environment();
    environment.push(("IF_HTTP_READHEADERTIMEOUT".into(), header_timeout.into()));
    environment.push(("IF_HTTP_MAXCONNECTIONS".into(), MAX_CONNECTIONS.to_string()));
    environment
}

/// A YAML document whose aliases expand to 10^9 kernel arguments.
fn billion_laughs() -> String {
    let mut text =
        String::from("a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let (previous, next) = (pair[0], pair[1]);
        let references = vec![format!("*{previous}"); 10].join(",");
        text.push_str(&format!("{next}: &{next} [{references}]\n"));
    }
    text.push_str("customization:\n  extraKernelArgs: *i\n");
    text
}

/// Sends `head` (and nothing after it) on a fresh connection and returns what the server
/// answers until it closes or `timeout` passes.
fn raw_exchange(address: &str, head: &[u8], timeout: Duration) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.write_all(head).expect("send");
    stream.set_read_timeout(Some(timeout)).expect("timeout");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
        if answer.windows(4).any(|window| window == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_requests_get_clear_answers_and_the_server_stays_small() {
    let started = Instant::now();
    let factory = Replica::start(&["serve"], &environment("2s"));
    eprintln!("started in {:?}", started.elapsed());
    let address = factory.base.trim_start_matches("http://").to_string();
    let client = reqwest::Client::new();
    let post = |body: String| {
        client
            .post(format!("{}/schematics", factory.base))
            .body(body)
            .send()
    };

    // Aliases are not expanded into a billion nodes: the document is refused as it is read.
    let started = Instant::now();
    let answer = post(billion_laughs()).await.expect("POST");
    assert_eq!(answer.status(), 400);
    let message = answer.text().await.expect("body");
    assert!(!message.trim().is_empty(), "a reason is given");
    eprintln!(
        "billion laughs: 400 in {:?}: {}",
        started.elapsed(),
        message.trim()
    );

    // Deep nesting and a huge scalar: refused or stored, never a crash.
    let deep = format!(
        "customization: {}{}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let answer = post(deep).await.expect("POST");
    assert_eq!(answer.status(), 400, "{:?}", answer.text().await);
    let huge = format!(
        "customization:\n  extraKernelArgs:\n    - {}\n",
        "x".repeat(900_000)
    );
    let status = post(huge).await.expect("POST").status();
    assert!(status == 201 || status == 400, "{status}");

    // Ten thousand extensions are a schematic like any other; the asset names the first the
    // release lacks.
    let mut many = String::from("customization:\n  systemExtensions:\n    officialExtensions:\n");
    for index in 0..10_000 {
        many.push_str(&format!("      - siderolabs/extension-{index:05}\n"));
    }
    let answer = post(many).await.expect("POST");
    assert_eq!(answer.status(), 201);
    let created: serde_json::Value = answer.json().await.expect("JSON");
    let id = created["id"].as_str().expect("id").to_string();
    let answer = client
        .get(format!(
            "{}/image/{id}/{VERSION}/initramfs-amd64.xz",
            factory.base
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(answer.status(), 400);
    let message = answer.text().await.expect("body");
    assert!(message.contains("siderolabs/extension-"), "{message}");

    // A 1 GB body: a declared one is refused before it is read, a chunked one once the
    // limit is passed.
    let answer = raw_exchange(
        &address,
        b"POST /schematics HTTP/1.1\r\nHost: factory\r\nContent-Length: 1073741824\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let mut stream = TcpStream::connect(&address).expect("connect");
    stream
        .write_all(
            b"POST /schematics HTTP/1.1\r\nHost: factory\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .expect("send");
    let mut writer = stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'x'; 1 << 20];
        let mut sent = 0u64;
        writer
            .set_write_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        while sent < 1 << 30 {
            let head = format!("{:x}\r\n", chunk.len());
            if writer.write_all(head.as_bytes()).is_err()
                || writer.write_all(&chunk).is_err()
                || writer.write_all(b"\r\n").is_err()
            {
                break;
            }
            sent += chunk.len() as u64;
        }
        sent
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).expect("an answer");
    assert_eq!(&answer, b"HTTP/1.1 413");
    drop(stream);
    let sent = sender.join().expect("sender");
    assert!(
        sent < 1 << 30,
        "the server read all of a 1 GB body ({sent} bytes)"
    );

    // Header injection through ?filename=.
    let cmdline = format!(
        "/image/{id}/{VERSION}/cmdline-metal-amd64",
        id = stored_id(&factory).await
    );
    for name in ["a%0d%0aSet-Cookie:%20x=1", "a%0aX: y", "%00"] {
        let answer = client
            .get(format!("{}{cmdline}?filename={name}", factory.base))
            .send()
            .await
            .expect("GET");
        assert_eq!(answer.status(), 400, "filename {name}");
        assert!(answer.headers().get("set-cookie").is_none());
    }
    let answer = client
        .get(format!("{}{cmdline}?filename=a%22%3B%20b", factory.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(answer.status(), 200);
    let disposition = answer.headers()["content-disposition"]
        .to_str()
        .expect("ASCII");
    assert_eq!(disposition, r#"attachment; filename="a\"; b""#);

    // Encoded `../` in every path parameter: never a file outside, never a 500.
    let traversals = [
        "..%2f..%2f..%2fetc%2fpasswd",
        "%2e%2e%2f%2e%2e%2fetc",
        "..%5c..%5cetc",
        "%2e%2e",
    ];
    let id = stored_id(&factory).await;
    for traversal in traversals {
        let paths = [
            format!("/schematics/{traversal}"),
            format!("/image/{traversal}/{VERSION}/kernel-amd64"),
            format!("/image/{id}/{traversal}/kernel-amd64"),
            format!("/image/{id}/{VERSION}/{traversal}"),
            format!("/pxe/{id}/{VERSION}/{traversal}"),
            format!("/pxe/{traversal}/{VERSION}/metal-amd64"),
            format!("/version/{traversal}/extensions/official"),
            format!("/version/{traversal}/overlays/official"),
            format!("/talosctl/{traversal}"),
            format!("/talosctl/{VERSION}/{traversal}"),
            format!("/v2/{traversal}/manifests/latest"),
            format!("/v2/{id}/installer/manifests/{traversal}"),
            format!("/v2/{id}/installer/blobs/{traversal}"),
            format!("/ui/static/{traversal}"),
            format!("/ui/result?schematic={traversal}&version={traversal}"),
        ];
        for path in paths {
            // Raw, because an HTTP client would resolve `%2e%2e` before sending it.
            let (status, body) = raw_get(&address, &path);
            assert!(
                matches!(status, 400 | 404 | 405),
                "{path}: {status} {}",
                body.chars().take(200).collect::<String>()
            );
            assert!(!body.contains("root:"), "{path} leaked a file");
        }
    }

    // Range edge cases on a cached asset.
    let full = client
        .get(format!("{}{cmdline}", factory.base))
        .send()
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("body");
    let length = full.len();
    let cases: [(&str, u16); 6] = [
        ("bytes=-0", 416),
        ("bytes=0-1,1-2", 200),
        ("bytes=0-5,3-8", 200),
        ("bytes=999999999-", 416),
        ("bytes=5-2", 200),
        ("bytes=-99999999", 206),
    ];
    for (range, expected) in cases {
        let answer = client
            .get(format!("{}{cmdline}", factory.base))
            .header("range", range)
            .send()
            .await
            .expect("GET");
        assert_eq!(answer.status().as_u16(), expected, "{range}");
        let body = answer.bytes().await.expect("body");
        match expected {
            200 | 206 => assert_eq!(body, full, "{range}"),
            _ => assert_ne!(body, full),
        }
    }
    let answer = client
        .head(format!("{}{cmdline}", factory.base))
        .header("range", "bytes=1-3")
        .send()
        .await
        .expect("HEAD");
    assert_eq!(answer.status(), 206);
    assert_eq!(answer.headers()["content-length"], "3");
    assert_eq!(
        answer.headers()["content-range"].to_str().expect("ASCII"),
        format!("bytes 1-3/{length}")
    );

    eprintln!("checks done after {:?}", started.elapsed());
    let (resident, peak) = factory.resident_bytes();
    eprintln!("resident {} MiB, peak {} MiB", resident >> 20, peak >> 20);
    assert!(peak < 256 << 20, "peak RSS {} MiB", peak >> 20);
    assert_eq!(
        client
            .get(format!("{}/healthz", factory.base))
            .send()
            .await
            .expect("GET")
            .status(),
        200
    );
}

/// `GET path` exactly as written, on a connection of its own: the status and the body.
fn raw_get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: factory\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .expect("send");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("an answer");
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{path}: not an HTTP answer: {answer}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    (status, body)
}

/// The README's boot example, stored.
async fn stored_id(factory: &Replica) -> String {
    let body =
        std::fs::read_to_string(assets_tests::workspace().join("fixtures/schematics/boot.yaml"))
            .expect("boot.yaml");
    factory.create_schematic(&body).await
}

#[test]
fn slow_and_idle_clients_are_cut_off_and_the_connection_limit_holds() {
    let began = Instant::now();
    let factory = Replica::start(&["serve"], &environment("5s"));
    eprintln!("started in {:?}", began.elapsed());
    let address = factory.base.trim_start_matches("http://").to_string();

    // Headers a byte every 300 ms: cut off after the 5 s header deadline, long before the
    // request would be complete.
    let mut slow = TcpStream::connect(&address).expect("connect");
    let request = b"GET /healthz HTTP/1.1\r\nHost: factory\r\nX-Slow: 1\r\n\r\n";
    let started = Instant::now();
    let mut cut_off = None;
    for byte in request {
        if slow.write_all(&[*byte]).is_err() {
            cut_off = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        slow.set_nonblocking(true).expect("nonblocking");
        let mut probe = [0u8; 64];
        let closed = slow.read(&mut probe).is_ok();
        slow.set_nonblocking(false).expect("blocking");
        if closed {
            cut_off = Some(started.elapsed());
            break;
        }
    }
    let cut_off = cut_off.expect("the slow client was never cut off");
    eprintln!("slow client cut off after {cut_off:?}");
    assert!(cut_off >= Duration::from_millis(4500), "{cut_off:?}");

    // A thousand idle connections: the limit's worth are held, the rest are told 503 at
    // once, and the descriptors stay bounded.
    let baseline = factory.open_descriptors();
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(TcpStream::connect(&address).expect("connect"));
    }
    // Every connection is accepted, then held or refused, well within the header deadline.
    let connected = Instant::now();
    let mut answered = vec![false; idle.len()];
    let mut refused = 0;
    while refused < 1000 - MAX_CONNECTIONS && connected.elapsed() < Duration::from_secs(4) {
        for (stream, answered) in idle.iter_mut().zip(answered.iter_mut()) {
            if *answered {
                continue;
            }
            stream.set_nonblocking(true).expect("nonblocking");
            let mut answer = [0u8; 12];
            if let Ok(read) = stream.read(&mut answer) {
                *answered = true;
                if read == 12 && &answer == b"HTTP/1.1 503" {
                    refused += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let descriptors = factory.open_descriptors();
    eprintln!(
        "descriptors: {baseline} before, {descriptors} with 1000 idle clients; {refused} \
         refused within {:?}",
        connected.elapsed()
    );
    assert!(
        descriptors <= baseline + MAX_CONNECTIONS + 16,
        "{descriptors} descriptors open"
    );
    assert_eq!(
        refused,
        1000 - MAX_CONNECTIONS,
        "connections refused with a 503"
    );

    // Past the header deadline the held ones are closed, and the server answers again.
    std::thread::sleep(Duration::from_secs(6));
    let answer = raw_exchange(
        &address,
        b"GET /healthz HTTP/1.1\r\nHost: factory\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let descriptors = factory.open_descriptors();
    assert!(
        descriptors <= baseline + 16,
        "{descriptors} descriptors still open"
    );
}
