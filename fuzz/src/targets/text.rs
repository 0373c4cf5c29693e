//! Targets over text a user sends: schematic documents, asset paths, `/v2` paths, `Range`
//! headers, and the configuration files and environment an operator writes.

use image_factory::config::Config;
use image_factory::fuzzing::{RangeAnswer, V2Route, parse_range};
use image_factory::profile::parse_path;
use image_factory::schematic::Schematic;
use image_factory::service::registry::InstallerName;

/// `POST /schematics` and `schematic id|canonical`: a document that parses has a canonical
/// form that reads back (as stored text and as a new upload) to the same ID.
pub fn schematic(data: &[u8]) {
    let Ok(parsed) = Schematic::parse_valid(data) else {
        return;
    };
    let canonical = parsed.canonical();
    let id = parsed.id();
    let stored = Schematic::from_canonical(&canonical)
        .unwrap_or_else(|error| panic!("canonical form does not read back: {error}\n{canonical}"));
    assert_eq!(
        stored.id(),
        id,
        "stored canonical form changes the ID\n{canonical}"
    );
    let uploaded = Schematic::parse_valid(canonical.as_bytes()).unwrap_or_else(|error| {
        panic!("canonical form is refused as upload: {error}\n{canonical}")
    });
    assert_eq!(
        uploaded.id(),
        id,
        "uploaded canonical form changes the ID\n{canonical}"
    );
}

/// The asset path grammar (`/image/<id>/<version>/<path>`, `image-factory build PATH`), and
/// the installer image names of `/v2`.
pub fn asset_path(data: &[u8]) {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(profile) = parse_path(path) {
        // The grammar takes any platform name, even an empty one, as upstream's does: the
        // plan refuses what the platform table does not know, so that is not checked here.
        assert!(
            path.contains(profile.arch.as_str())
                || path.contains("x86_64")
                || path.contains("i386"),
            "{path:?} parsed to an architecture it does not name: {profile:?}"
        );
        assert_eq!(
            parse_path(path).as_ref(),
            Ok(&profile),
            "{path:?} parses differently twice"
        );
    }
    let _ = image_factory::fuzzing::content_type(path);
    if let Some(name) = InstallerName::parse(path) {
        assert!(
            !name.platform.is_empty(),
            "{path:?} named an installer of no platform"
        );
    }
}

/// The `/v2/<path>` router: a route's parts are whole segments that spell the path again.
pub fn registry_path(data: &[u8]) {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let trimmed = path.trim_matches('/');
    match V2Route::of(path) {
        V2Route::Ping => assert!(trimmed.is_empty(), "{path:?} routed to the ping"),
        V2Route::NotFound => {}
        V2Route::Source {
            name,
            resource,
            reference,
        } => {
            assert!(
                !name.is_empty() && !reference.is_empty(),
                "{path:?}: empty part"
            );
            assert_eq!(format!("siderolabs/{name}/{resource}/{reference}"), trimmed);
        }
        V2Route::Installer {
            image,
            schematic,
            resource,
            reference,
        } => {
            assert!(!reference.is_empty(), "{path:?}: empty reference");
            for part in [image, schematic, resource, reference] {
                assert!(!part.contains('/'), "{path:?}: part {part:?} holds a slash");
            }
            assert_eq!(
                format!("{image}/{schematic}/{resource}/{reference}"),
                trimmed
            );
            if let Some(name) = InstallerName::parse(image) {
                assert!(
                    !name.platform.is_empty(),
                    "{image:?}: installer of no platform"
                );
            }
        }
    }
}

/// `Range` on downloads: the first 8 bytes are the asset size (little-endian), the rest the
/// header. A part always lies inside the asset.
pub fn range_header(data: &[u8]) {
    let (size, header) = data.split_at(data.len().min(8));
    let mut raw = [0u8; 8];
    raw[..size.len()].copy_from_slice(size);
    let size = u64::from_le_bytes(raw);
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    if let RangeAnswer::Part(start, end) = parse_range(header, size) {
        assert!(
            start <= end && end < size,
            "{header:?} on {size} bytes gave the part {start}..={end}"
        );
    }
}

/// The configuration loader: `IF_*` variables (lines `NAME=value` before the first NUL
/// byte) and one YAML file (the rest). A configuration that loads loads again, to the same
/// value, from its own JSON form.
pub fn config(data: &[u8]) {
    let (env_part, file_part) = match data.iter().position(|&byte| byte == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&data[..0], data),
    };
    let env: Vec<(String, String)> = String::from_utf8_lossy(env_part)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let dir = super::scratch("config");
    let file = dir.join("factory.yaml");
    write(&file, file_part);
    let Ok(loaded) = Config::load(env, std::slice::from_ref(&file)) else {
        return;
    };
    let _ = loaded.listen_addr();
    let json = serde_json::to_vec(&loaded)
        .unwrap_or_else(|error| panic!("a loaded configuration does not serialise: {error}"));
    let again_file = dir.join("again.json");
    write(&again_file, &json);
    let again = Config::load(Vec::new(), &[again_file]).unwrap_or_else(|error| {
        panic!(
            "a loaded configuration does not load from its JSON form: {error}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(
        again, loaded,
        "the JSON form of a configuration loads differently"
    );
}

pub(super) fn write(path: &std::path::Path, bytes: &[u8]) {
    if let Err(error) = std::fs::write(path, bytes) {
        panic!("cannot write {}: {error}", path.display());
    }
}
