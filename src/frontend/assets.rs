//! `GET|HEAD /image/:schematic/:version/:path` (build or fetch an asset) and
//! `GET /pxe/:schematic/:version/:path` (the iPXE script that boots it).

use super::error::{ApiError, plain_text};
use crate::service::checksums::Checksum;
use crate::service::delivery::{read_all, read_range};
use crate::service::{Delivery, Factory};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, serde::Deserialize)]
pub struct ImageQuery {
    filename: Option<String>,
}

/// Content type by the path's final extension, one fixed table (no host mime database).
pub fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, ext)| ext).unwrap_or("");
    match extension {
        "efi" => "application/efi",
        "iso" => "application/x-iso9660-image",
        "xz" => "application/x-xz",
        "gz" => "application/gzip",
        "qcow2" => "application/x-qemu-disk",
        "tar" => "application/x-tar",
        "zst" => "application/zstd",
        _ => "application/octet-stream",
    }
}

fn enterprise_only(path: &str) -> Option<&'static str> {
    if path.ends_with(".sigstore.json") {
        Some("asset signatures are only available in the Enterprise edition")
    } else {
        None
    }
}

/// A single `bytes=start-end` range within `size`.
fn parse_range(header: &str, size: u64) -> Option<(u64, u64)> {
    let spec = header.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let length: u64 = suffix.parse().ok()?;
            (size.checked_sub(length.min(size))?, size.checked_sub(1)?)
        }
        (start, "") => (start.parse().ok()?, size.checked_sub(1)?),
        (start, end) => (
            start.parse().ok()?,
            end.parse::<u64>().ok()?.min(size.saturating_sub(1)),
        ),
    };
    (start <= end && end < size).then_some((start, end))
}

pub async fn image(
    State(factory): State<Factory>,
    Path((schematic, version, path)): Path<(String, String, String)>,
    Query(query): Query<ImageQuery>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(message) = enterprise_only(&path) {
        return Ok(plain_text(StatusCode::PAYMENT_REQUIRED, message));
    }
    if let Some((asset, checksum)) = Checksum::split(&path) {
        let plan = factory.resolve(&schematic, &version, asset).await?;
        let hex = factory.checksum(plan, checksum).await?;
        // The format `sha256sum -c` reads.
        let body = format!("{hex}  {asset}\n");
        return Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            if method == Method::HEAD {
                String::new()
            } else {
                body
            },
        )
            .into_response());
    }
    let plan = factory.resolve(&schematic, &version, &path).await?;
    let filename = query
        .filename
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| path.clone());
    let disposition = format!("attachment; filename=\"{filename}\"");
    // A plain GET of an asset being built streams it as it is written; HEAD and ranges
    // need the final size.
    let asset = if method == Method::GET && !headers.contains_key(header::RANGE) {
        match factory.deliver(plan).await? {
            Delivery::Ready(asset) => asset,
            Delivery::Growing(growing) => {
                return Ok(Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, content_type(&path))
                    .header(header::CONTENT_DISPOSITION, disposition)
                    .body(Body::from_stream(growing.into_stream()))?);
            }
        }
    } else {
        factory.asset(plan).await?
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .map(|value| parse_range(value, asset.size));
    let (status, start, length) = match range {
        None => (StatusCode::OK, 0, asset.size),
        Some(Some((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        Some(None) => {
            let mut response = plain_text(StatusCode::RANGE_NOT_SATISFIABLE, "invalid range");
            if let Ok(value) = format!("bytes */{}", asset.size).parse() {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type(&path))
        .header(header::CONTENT_DISPOSITION, disposition)
        .header(header::CONTENT_LENGTH, length)
        .header(header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{}", start + length - 1, asset.size),
        );
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_stream(read_range(&asset.path, start, length).await?)
    };
    Ok(builder.body(body)?)
}

/// The iPXE script: kernel + initrd with the built command line (a UKI for Secure Boot).
pub async fn pxe(
    State(factory): State<Factory>,
    Path((schematic, version, path)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let plan = factory
        .resolve(&schematic, &version, &format!("cmdline-{path}"))
        .await?;
    let arch = plan.request.path.arch;
    let platform = plan.request.path.platform.clone();
    let secureboot = plan.request.path.secureboot;
    let tag = plan.request.version.tag();
    let asset = factory.asset(plan).await?;
    // A command line is built from the UTF-8 of the schematic and the profile.
    let cmdline = String::from_utf8_lossy(&read_all(&asset).await?).into_owned();
    let config = &factory.config.http;
    let base = if config.external_pxe_url.is_empty() {
        &config.external_url
    } else {
        &config.external_pxe_url
    };
    let base = format!("{}/image/{schematic}/{tag}", base.trim_end_matches('/'));
    let script = if secureboot {
        format!(
            "#!ipxe\n\nimgfree\nkernel {base}/{platform}-{arch}-secureboot-uki.efi {cmdline}\nboot\n"
        )
    } else {
        format!(
            "#!ipxe\n\nimgfree\nkernel {base}/kernel-{arch} {cmdline}\ninitrd {base}/initramfs-{arch}.xz\nboot\n"
        )
    };
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        script,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("metal-amd64-uki.efi"), "application/efi");
        assert_eq!(content_type("initramfs-amd64.xz"), "application/x-xz");
        assert_eq!(content_type("kernel-amd64"), "application/octet-stream");
        assert_eq!(
            content_type("cmdline-metal-amd64"),
            "application/octet-stream"
        );
        assert_eq!(content_type("gcp-amd64.raw.tar.gz"), "application/gzip");
    }
}
