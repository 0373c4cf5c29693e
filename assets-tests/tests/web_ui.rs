//! The web UI in a real browser: Debian's headless `chromium` driven through
//! `chromedriver` walks the wizard (bare metal with extensions and a kernel argument, a
//! board with options, Secure Boot), with JavaScript and without, and checks the shown ID
//! against `POST /schematics`, the YAML against the canonical form, and every link on the
//! result page; the error pages answer 404. Screenshots of each step are kept under
//! `target/tmp/web-ui/`.

use assets_tests::TestFactory;
use assets_tests::webdriver::Browser;
use std::path::PathBuf;

const VERSION: &str = "v1.12.0";

fn screenshots(walk: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("web-ui")
        .join(walk)
}

/// What a walk chooses.
struct Walk<'a> {
    name: &'a str,
    target: &'a str,
    arch: &'a str,
    board: Option<&'a str>,
    secureboot: bool,
    extensions: &'a [&'a str],
    cmdline: &'a str,
    overlay_options: &'a str,
}

/// Walks the wizard step by step with the Continue buttons (what works without
/// JavaScript), returns the ID the result page shows.
/// Waits until the page has finished re-rendering after a change (`app.js` marks the form
/// busy meanwhile).
async fn settled(browser: &Browser) {
    browser.find("#wizard:not([data-busy])").await;
}

async fn walk(factory: &TestFactory, walk: &Walk<'_>, javascript: bool) -> String {
    let mode = if javascript { "js" } else { "no-js" };
    let mut browser =
        Browser::start(javascript, &screenshots(&format!("{}-{mode}", walk.name))).await;
    browser.open(&format!("{}/", factory.base)).await;
    browser.screenshot("hardware").await;
    browser
        .click(&format!("input[name=target][value={}]", walk.target))
        .await;
    settled(&browser).await;
    browser.click("#continue").await;
    browser
        .click(&format!("#version option[value=\"{VERSION}\"]"))
        .await;
    settled(&browser).await;
    browser.screenshot("version").await;
    browser.click("#continue").await;
    if let Some(board) = walk.board {
        browser
            .click(&format!("#board option[value=\"{board}\"]"))
            .await;
        settled(&browser).await;
    }
    browser.screenshot("platform").await;
    browser.click("#continue").await;
    browser
        .click(&format!("input[name=arch][value={}]", walk.arch))
        .await;
    settled(&browser).await;
    if walk.secureboot {
        browser.click("#secureboot").await;
        settled(&browser).await;
    }
    browser.screenshot("architecture").await;
    browser.click("#continue").await;
    for extension in walk.extensions {
        if javascript {
            // The live search narrows the list to the one wanted.
            browser.type_into("#extension-search", extension).await;
        }
        browser
            .click(&format!("input[name=extensions][value=\"{extension}\"]"))
            .await;
        settled(&browser).await;
        if javascript {
            browser.click("#extension-search").await;
            clear(&browser, "#extension-search", extension.len()).await;
        }
    }
    browser.screenshot("extensions").await;
    browser.click("#continue").await;
    // Leaving a field re-renders the form in place (with JavaScript).
    browser.type_into("#cmdline", walk.cmdline).await;
    browser.click("h1").await;
    settled(&browser).await;
    if !walk.overlay_options.is_empty() {
        browser
            .type_into("#overlay-options", walk.overlay_options)
            .await;
        browser.click("h1").await;
        settled(&browser).await;
    }
    if javascript {
        browser.wait_for_text("#preview-yaml", walk.cmdline).await;
    }
    let preview = if javascript {
        Some(browser.text("#preview-id").await)
    } else {
        None
    };
    browser.screenshot("customization").await;
    browser.click("#create").await;
    let id = browser.text("#schematic-id").await;
    browser.screenshot("result").await;
    if let Some(preview) = preview {
        assert_eq!(preview, id, "the live ID is the stored one");
    }
    assert!(
        browser.url().await.contains("/ui/result?"),
        "{}",
        browser.url().await
    );

    // The YAML shown is the canonical form the factory stores.
    let yaml = browser.text("#schematic-yaml").await;
    let stored = factory
        .get(&format!("/schematics/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(yaml.trim_end(), stored.trim_end());

    // Every link answers.
    let client = reqwest::Client::new();
    let links = browser.all("a.asset, a.checksum").await;
    assert!(links.len() >= 11, "{} links", links.len());
    for link in links {
        let url = browser.attribute(&link, "href").await.expect("an href");
        let local = url.replace("http://factory.test", &factory.base);
        let answer = client.head(&local).send().await.unwrap();
        assert_eq!(answer.status(), 200, "HEAD {url}");
    }
    assert!(!browser.text("#first-boot").await.is_empty());
    let command = browser.text("pre.command").await;
    assert!(
        command.contains(&format!("--schematic-id={id}")),
        "{command}"
    );
    let installer = browser.text("#installer").await;
    assert!(installer.starts_with("factory.test/"), "{installer}");
    assert!(
        installer.ends_with(&format!("/{id}:{VERSION}")),
        "{installer}"
    );
    id
}

/// Deletes `count` characters of the field `css` (WebDriver's backspace key).
async fn clear(browser: &Browser, css: &str, count: usize) {
    browser.type_into(css, &"\u{E003}".repeat(count)).await;
}

async fn posted_id(factory: &TestFactory, yaml: &str) -> String {
    factory.create_schematic(yaml).await
}

const METAL: Walk = Walk {
    name: "metal",
    target: "metal",
    arch: "amd64",
    board: None,
    secureboot: false,
    extensions: &["siderolabs/gvisor", "siderolabs/amd-ucode"],
    cmdline: "fixture.ui=walk",
    overlay_options: "",
};

#[tokio::test(flavor = "multi_thread")]
async fn the_metal_walk_with_and_without_javascript_reaches_the_posted_id() {
    let factory = TestFactory::start(|_| {}).await;
    let expected = posted_id(
        &factory,
        "customization:\n  extraKernelArgs: [fixture.ui=walk]\n  systemExtensions:\n    \
         officialExtensions: [siderolabs/amd-ucode, siderolabs/gvisor]\n",
    )
    .await;
    assert_eq!(walk(&factory, &METAL, true).await, expected);
    assert_eq!(walk(&factory, &METAL, false).await, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_board_walk_chooses_an_overlay_with_options() {
    let factory = TestFactory::start(|_| {}).await;
    let board = Walk {
        name: "board",
        target: "sbc",
        arch: "arm64",
        board: Some("qemu_arm64"),
        secureboot: false,
        extensions: &[],
        cmdline: "fixture.ui=board",
        overlay_options: "configTxtAppend: dtparam=fixture=on",
    };
    let expected = posted_id(
        &factory,
        "overlay:\n  image: siderolabs/sbc-fixture\n  name: qemu_arm64\n  options:\n    \
         configTxtAppend: dtparam=fixture=on\ncustomization:\n  extraKernelArgs: [fixture.ui=board]\n",
    )
    .await;
    assert_eq!(walk(&factory, &board, true).await, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secure_boot_walk_and_its_absence() {
    // Without keys the choice is shown, disabled, with the reason.
    let plain = TestFactory::start(|_| {}).await;
    let mut browser = Browser::start(false, &screenshots("secureboot-unavailable")).await;
    browser
        .open(&format!(
            "{}/?step=3&target=metal&version={VERSION}",
            plain.base
        ))
        .await;
    let reason = browser.text("#secureboot-why").await;
    assert!(reason.contains("no Secure Boot signing keys"), "{reason}");
    browser.screenshot("unavailable").await;
    drop(browser);

    let factory = TestFactory::start(assets_tests::use_fixture_secure_boot_keys).await;
    let secure = Walk {
        name: "secureboot",
        target: "metal",
        arch: "amd64",
        board: None,
        secureboot: true,
        extensions: &[],
        cmdline: "fixture.ui=secureboot",
        overlay_options: "",
    };
    let id = walk(&factory, &secure, true).await;
    let expected = posted_id(
        &factory,
        "customization:\n  extraKernelArgs: [fixture.ui=secureboot]\n",
    )
    .await;
    assert_eq!(id, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_versions_and_schematics_are_readable_404_pages() {
    let factory = TestFactory::start(|_| {}).await;
    for path in [
        "/?version=v9.9.9".to_string(),
        format!("/?schematic-id={}", "0".repeat(64)),
        format!(
            "/ui/result?schematic-id={}&version={VERSION}",
            "0".repeat(64)
        ),
        "/ui/result?schematic-id=nonsense&version=v1.12.0".to_string(),
    ] {
        let answer = factory.get(&path).await;
        assert_eq!(answer.status(), 404, "{path}");
        assert!(
            answer.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        let body = answer.text().await.unwrap();
        assert!(
            body.contains("not found") || body.contains("not offered"),
            "{path}: {body}"
        );
        assert!(!body.contains("panicked"), "{body}");
    }
    // A stored schematic opens the wizard at its choices.
    let id = factory
        .create_schematic("customization:\n  extraKernelArgs: [reopened=1]\n")
        .await;
    let page = factory
        .get(&format!("/?schematic-id={id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(&id), "the preview shows the stored ID");
    assert!(page.contains("reopened=1"));
}
