//! Database URLs (src/database/url.rs): `BackendKind::from_url`, `sqlite_file` and `sqlite_read_only_uri`
//! on arbitrary text never panic, and the read-only URI of a path names that same path when read back by
//! SQLite's URI rules (written out below from <https://www.sqlite.org/uri.html>), with `mode=ro` as its
//! only parameter; a `file:` URI keeps its path and gets exactly one `mode`.
#![no_main]

use std::os::unix::ffi::OsStrExt;

use diesel_vector::database::{sqlite_file, sqlite_path, sqlite_read_only_uri, BackendKind};
use diesel_vector::migrations::MigrationError;
use libfuzzer_sys::fuzz_target;

/// SQLite's reading of a `file:` URI: (path bytes, query parameters). `given`: the URI came from the
/// user as it is, whose authority SQLite would judge (ours never has one).
fn sqlite_reads(uri: &str, given: bool) -> (Vec<u8>, Vec<String>) {
    let rest = uri.strip_prefix("file:").expect("a file: URI");
    let rest = rest.split('#').next().unwrap_or("");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = match path.strip_prefix("//") {
        Some(after) => {
            let slash = after.find('/').unwrap_or(after.len());
            let authority = &after[..slash];
            assert!(given || authority.is_empty(), "authority {authority:?} in {uri:?}");
            &after[slash..]
        }
        None => path,
    };
    let bytes = path.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    (out, query.split('&').filter(|p| !p.is_empty()).map(str::to_owned).collect())
}

fuzz_target!(|url: &str| {
    let kind = BackendKind::from_url(url);
    let file = sqlite_file(url);
    let location = sqlite_path(url);
    if matches!(kind, Err(MigrationError::EmptyUrl)) {
        assert!(file.is_none(), "an empty URL names no file: {url:?}");
        return;
    }
    if !matches!(kind, Ok(BackendKind::Sqlite)) {
        return;
    }
    let uri = sqlite_read_only_uri(url);
    let (path, params) = sqlite_reads(&uri, location.starts_with("file:"));
    assert_eq!(params.iter().filter(|p| p.starts_with("mode=")).count(), 1, "{url:?} -> {uri:?}");
    assert!(params.iter().any(|p| p == "mode=ro"), "{url:?} -> {uri:?}");
    if location.starts_with("file:") {
        return;
    }
    // A path: SQLite reads back exactly the path, and nothing else.
    assert_eq!(params, ["mode=ro"], "{url:?} -> {uri:?}");
    if location == ":memory:" {
        assert!(file.is_none());
        return;
    }
    assert_eq!(path, location.as_bytes(), "{url:?} -> {uri:?}");
    assert_eq!(file.as_deref().map(|f| f.as_os_str().as_bytes()), Some(location.as_bytes()), "{url:?}");
});
