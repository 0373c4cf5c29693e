//! Registry credentials as the Docker tooling finds them: `$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json` (`auths` entries, then `credHelpers` per registry, then
//! `credsStore`), and `GITHUB_TOKEN` for `ghcr.io`; anonymous otherwise. A credential helper
//! is the one program the Docker config protocol makes us run, and only when the operator's
//! config names it.

use base64::Engine;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct DockerConfig {
    auths: BTreeMap<String, AuthEntry>,
    cred_helpers: BTreeMap<String, String>,
    creds_store: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AuthEntry {
    auth: String,
    username: String,
    password: String,
    identitytoken: String,
}

/// What a credential helper prints for `get`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

fn config_path() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")))
        .map(|dir| dir.join("config.json"))
}

/// The host an `auths` key names (`https://index.docker.io/v1/`, `ghcr.io`, `host:5000`).
fn host_of(key: &str) -> &str {
    key.trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("")
}

/// Credentials for `registry` (host or host:port).
pub fn for_registry(registry: &str) -> RegistryAuth {
    let config = config_path()
        .and_then(|path| std::fs::read(path).ok())
        .and_then(
            |bytes| match serde_json::from_slice::<DockerConfig>(&bytes) {
                Ok(config) => Some(config),
                Err(error) => {
                    tracing::warn!(%error, "ignoring an unreadable Docker config");
                    None
                }
            },
        )
        .unwrap_or_default();
    if let Some(auth) = from_config(&config, registry) {
        return auth;
    }
    if registry == "ghcr.io"
        && let Ok(token) = std::env::var("GITHUB_TOKEN")
        && !token.is_empty()
    {
        // ghcr.io takes any user name with a token as the password.
        return RegistryAuth::Basic("github".into(), token);
    }
    RegistryAuth::Anonymous
}

fn from_config(config: &DockerConfig, registry: &str) -> Option<RegistryAuth> {
    let entry = config
        .auths
        .iter()
        .find_map(|(key, entry)| (host_of(key) == registry).then_some(entry));
    if let Some(entry) = entry
        && let Some(auth) = decode_entry(entry)
    {
        return Some(auth);
    }
    let helper = config
        .cred_helpers
        .iter()
        .find_map(|(key, helper)| (host_of(key) == registry).then_some(helper.as_str()))
        .or((!config.creds_store.is_empty()).then_some(config.creds_store.as_str()))?;
    match run_helper(helper, registry) {
        Ok(auth) => auth,
        Err(problem) => {
            tracing::warn!(helper, registry, problem, "credential helper failed");
            None
        }
    }
}

fn decode_entry(entry: &AuthEntry) -> Option<RegistryAuth> {
    if !entry.identitytoken.is_empty() {
        return Some(RegistryAuth::Bearer(entry.identitytoken.clone()));
    }
    if !entry.username.is_empty() {
        return Some(RegistryAuth::Basic(
            entry.username.clone(),
            entry.password.clone(),
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.auth.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())?;
    let (user, password) = decoded.split_once(':')?;
    Some(RegistryAuth::Basic(user.to_string(), password.to_string()))
}

/// `docker-credential-<helper> get`, the server on standard input; `None` when the helper
/// knows no credentials for it.
fn run_helper(helper: &str, registry: &str) -> Result<Option<RegistryAuth>, String> {
    if helper.contains('/') || helper.is_empty() {
        return Err(format!("invalid helper name {helper:?}"));
    }
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| error.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(registry.as_bytes())
            .map_err(|error| error.to_string())?;
    }
    let output = child
        .wait_with_output()
        .map_err(|error| error.to_string())?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stdout);
        if message.contains("credentials not found") {
            return Ok(None);
        }
        return Err(format!("{}: {}", output.status, message.trim()));
    }
    let answer: HelperAnswer =
        serde_json::from_slice(&output.stdout).map_err(|error| error.to_string())?;
    Ok(Some(if answer.username == "<token>" {
        RegistryAuth::Bearer(answer.secret)
    } else {
        RegistryAuth::Basic(answer.username, answer.secret)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> DockerConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn auths_entries_by_host() {
        let config = parse(
            r#"{"auths": {"https://registry.example:5000/v1/": {"auth": "dXNlcjpzZWNyZXQ="},
                "other.example": {"username": "u", "password": "p"}}}"#,
        );
        assert_eq!(
            from_config(&config, "registry.example:5000"),
            Some(RegistryAuth::Basic("user".into(), "secret".into()))
        );
        assert_eq!(
            from_config(&config, "other.example"),
            Some(RegistryAuth::Basic("u".into(), "p".into()))
        );
        assert_eq!(from_config(&config, "ghcr.io"), None);
    }

    #[test]
    fn a_helper_that_cannot_run_gives_no_credentials() {
        let config = parse(r#"{"credHelpers": {"ghcr.io": "absent-helper-for-test"}}"#);
        assert_eq!(from_config(&config, "ghcr.io"), None);
        let config = parse(r#"{"credsStore": "../escape"}"#);
        assert_eq!(from_config(&config, "ghcr.io"), None);
    }
}
