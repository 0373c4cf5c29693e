//! A small W3C WebDriver client for the browser tests: Debian's `chromedriver` driving
//! headless `chromium` (JavaScript on or off), spoken to over HTTP with the few commands the
//! tests need (navigate, find, click, type, read, screenshot).

use base64::Engine;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session with its own `chromedriver`.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: reqwest::Client,
    screenshots: PathBuf,
    shots: usize,
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts `chromedriver` and a headless `chromium` session; screenshots go to
    /// `screenshots`.
    pub async fn start(javascript: bool, screenshots: &Path) -> Browser {
        std::fs::create_dir_all(screenshots).expect("screenshot directory");
        let address = super::free_loopback_address();
        let port = address.rsplit(':').next().expect("a port").to_string();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (apt-get install chromium-driver; make deps does)");
        let base = format!("http://{address}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = client.get(format!("{base}/status")).send().await;
            if let Ok(answer) = ready
                && let Ok(status) = answer.json::<Value>().await
                && status["value"]["ready"] == true
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut options = json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1800"],
        });
        if !javascript {
            options["prefs"] = json!({"profile.managed_default_content_settings.javascript": 2});
        }
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            client,
            screenshots: screenshots.to_path_buf(),
            shots: 0,
        };
        let created = browser
            .command(
                reqwest::Method::POST,
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": options,
                }}}),
            )
            .await;
        browser.session = created["sessionId"]
            .as_str()
            .expect("a session ID")
            .to_string();
        browser
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        match self.try_command(method, path, body).await {
            Ok(value) => value,
            Err(problem) => panic!("WebDriver {path}: {problem}"),
        }
    }

    async fn try_command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, String> {
        let request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        let request = if method == reqwest::Method::GET {
            request
        } else {
            request.json(&body)
        };
        let answer: Value = request
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("a JSON answer");
        if let Some(error) = answer["value"]["error"].as_str() {
            return Err(format!("{error}: {}", answer["value"]["message"]));
        }
        Ok(answer["value"].clone())
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn open(&self, url: &str) {
        self.command(
            reqwest::Method::POST,
            &self.session_path("/url"),
            json!({"url": url}),
        )
        .await;
    }

    pub async fn url(&self) -> String {
        let value = self
            .command(
                reqwest::Method::GET,
                &self.session_path("/url"),
                Value::Null,
            )
            .await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// The elements matching `css` now.
    pub async fn all(&self, css: &str) -> Vec<Element> {
        let found = self
            .command(
                reqwest::Method::POST,
                &self.session_path("/elements"),
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|element| element[ELEMENT].as_str().map(|id| Element(id.to_string())))
            .collect()
    }

    /// The first element matching `css`, waiting up to ten seconds for it.
    pub async fn find(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            if let Some(element) = self.all(css).await.into_iter().next() {
                return element;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no element {css:?} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element `css`; an element replaced while it was clicked (the page
    /// re-renders on changes) is found again.
    pub async fn click(&self, css: &str) {
        let started = Instant::now();
        loop {
            let element = self.find(css).await;
            let clicked = self
                .try_command(
                    reqwest::Method::POST,
                    &self.session_path(&format!("/element/{}/click", element.0)),
                    json!({}),
                )
                .await;
            match clicked {
                Ok(_) => return,
                Err(problem)
                    if (problem.contains("stale") || problem.contains("not interactable"))
                        && started.elapsed() < Duration::from_secs(10) =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(problem) => panic!("clicking {css}: {problem}"),
            }
        }
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &self.session_path(&format!("/element/{}/value", element.0)),
            json!({"text": text}),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        let value = self
            .command(
                reqwest::Method::GET,
                &self.session_path(&format!("/element/{}/text", element.0)),
                Value::Null,
            )
            .await;
        value.as_str().unwrap_or_default().to_string()
    }

    pub async fn attribute(&self, element: &Element, name: &str) -> Option<String> {
        let value = self
            .command(
                reqwest::Method::GET,
                &self.session_path(&format!("/element/{}/attribute/{name}", element.0)),
                Value::Null,
            )
            .await;
        value.as_str().map(String::from)
    }

    /// Waits until the text of `css` contains `wanted`.
    pub async fn wait_for_text(&self, css: &str, wanted: &str) {
        let started = Instant::now();
        loop {
            if self.text(css).await.contains(wanted) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{css} never showed {wanted:?}: {:?}",
                self.text(css).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the page as `<n>-<name>.png`.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        let value = self
            .command(
                reqwest::Method::GET,
                &self.session_path("/screenshot"),
                Value::Null,
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().expect("base64 PNG"))
            .expect("a PNG");
        self.shots += 1;
        let path = self
            .screenshots
            .join(format!("{:02}-{name}.png", self.shots));
        std::fs::write(&path, png).expect("screenshot written");
        path
    }
}

impl Drop for Browser {
    /// Ends the session (chromedriver closes its browser), then the driver. Plain blocking
    /// HTTP: a drop cannot await.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let host = self.base.trim_start_matches("http://");
        if let Ok(mut stream) = std::net::TcpStream::connect(host) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                stream,
                "DELETE /session/{} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = stream.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
