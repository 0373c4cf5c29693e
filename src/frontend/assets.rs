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

/// What a `Range` header asks of an asset of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No range we serve as a part: several ranges, another unit, or a malformed header,
    /// which RFC 9110 lets a server ignore; the whole body goes out with 200.
    Whole,
    /// `start..=end`, answered with 206.
    Part(u64, u64),
    /// A well-formed range that lies outside the asset: 416.
    Unsatisfiable,
}

pub fn parse_range(header: &str, size: u64) -> RangeAnswer {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((start, end)) = spec.split_once('-') else {
        return RangeAnswer::Whole;
    };
    let number = |text: &str| text.trim().parse::<u64>().ok();
    match (start.trim(), end.trim()) {
        ("", "") => RangeAnswer::Whole,
        ("", suffix) => match number(suffix) {
            None => RangeAnswer::Whole,
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if size == 0 => RangeAnswer::Unsatisfiable,
            Some(length) => RangeAnswer::Part(size - length.min(size), size - 1),
        },
        (start_text, end_text) => {
            let (Some(start), end) = (number(start_text), number(end_text)) else {
                return RangeAnswer::Whole;
            };
            if !end_text.is_empty() && end.is_none() {
                return RangeAnswer::Whole;
            }
            match end {
                Some(end) if end < start => RangeAnswer::Whole,
                _ if start >= size => RangeAnswer::Unsatisfiable,
                Some(end) => RangeAnswer::Part(start, end.min(size - 1)),
                None => RangeAnswer::Part(start, size - 1),
            }
        }
    }
}

/// `Content-Disposition` for a download named `filename`: quotes and backslashes escaped,
/// non-ASCII names in RFC 6266's `filename*` (with an ASCII fallback); control characters
/// (a CR/LF would end the header) refused.
fn content_disposition(filename: &str) -> Result<String, String> {
    if filename.chars().any(char::is_control) {
        return Err(format!(
            "invalid filename {filename:?}: control characters are not allowed"
        ));
    }
    let quoted: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                "_".into()
            }
        })
        .collect::<String>()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    if filename.is_ascii() {
        return Ok(format!("attachment; filename=\"{quoted}\""));
    }
    let encoded: String = filename
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect();
    Ok(format!(
        "attachment; filename=\"{quoted}\"; filename*=UTF-8''{encoded}"
    ))
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
    let disposition = match content_disposition(&filename) {
        Ok(disposition) => disposition,
        Err(message) => return Ok(plain_text(StatusCode::BAD_REQUEST, &message)),
    };
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
        .map_or(RangeAnswer::Whole, |value| parse_range(value, asset.size));
    let (status, start, length) = match range {
        RangeAnswer::Whole => (StatusCode::OK, 0, asset.size),
        RangeAnswer::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeAnswer::Unsatisfiable => {
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
        use RangeAnswer::{Part, Unsatisfiable, Whole};
        assert_eq!(parse_range("bytes=0-9", 100), Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Part(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), Part(0, 99));
        assert_eq!(parse_range("bytes=50-500", 100), Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=200-300", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(
            parse_range("bytes=0-1,5-9", 100),
            Whole,
            "several ranges: the whole body"
        );
        assert_eq!(parse_range("items=0-1", 100), Whole);
        assert_eq!(parse_range("bytes=9-1", 100), Whole, "invalid: ignored");
        assert_eq!(parse_range("bytes=x-", 100), Whole);
        assert_eq!(parse_range("bytes=1-x", 100), Whole);
        assert_eq!(parse_range("bytes=-", 100), Whole);
    }

    #[test]
    fn download_names_cannot_break_out_of_the_header() {
        assert_eq!(
            content_disposition("metal-amd64.iso").unwrap(),
            "attachment; filename=\"metal-amd64.iso\""
        );
        assert_eq!(
            content_disposition("a\"; b").unwrap(),
            "attachment; filename=\"a\\\"; b\""
        );
        assert_eq!(
            content_disposition("tälos.iso").unwrap(),
            "attachment; filename=\"t_los.iso\"; filename*=UTF-8''t%C3%A4los.iso"
        );
        let error = content_disposition("a\r\nSet-Cookie: x=1").unwrap_err();
        assert!(error.contains("Set-Cookie"), "{error}");
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
