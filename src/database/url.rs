//! SQLite locations in database URLs, as pure functions: which file a URL names, and the `file:` URI
//! that opens it in a given mode.
//!
//! The forms a URL may take: `sqlite://PATH`, a plain path (relative, absolute, or `//`-prefixed, which
//! POSIX reads as absolute), `:memory:`, or a `file:` URI (kept as written, with its parameters). A path
//! is never interpreted: `?`, `#` and `%` are file-name characters in it, and are percent-encoded when the
//! path goes into a URI. An empty location is an error everywhere ([`is_empty_location`]): SQLite would
//! open a private temporary database, silently gone when the connection closes.

use std::borrow::Cow;
use std::path::PathBuf;

/// The SQLite location in `url`: `sqlite://` stripped; `file:` URIs, paths and `:memory:` pass.
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").unwrap_or(url)
}

/// True when an SQLite location names no file and no in-memory database: an empty (or blank) path, or
/// a `file:` URI with an empty path that does not ask for `mode=memory`. SQLite opens a private,
/// temporary database for those.
pub(crate) fn is_empty_location(location: &str) -> bool {
    if location.trim().is_empty() {
        return true;
    }
    match location.strip_prefix("file:") {
        Some(rest) => {
            let (path, params) = split_uri(rest);
            uri_path(path).is_empty() && !params.split('&').any(|p| p == "mode=memory")
        }
        None => false,
    }
}

/// The file an SQLite URL names, or `None` for an in-memory database (`:memory:`, `file::memory:`,
/// `mode=memory`) and for URLs of other backends. A `file:` URI's path is percent-decoded and its
/// authority (`file://localhost/...`) dropped, as SQLite does.
///
/// ```
/// use std::path::PathBuf;
/// use diesel_vector::database::sqlite_file;
///
/// assert_eq!(sqlite_file("sqlite:///var/app.db"), Some(PathBuf::from("/var/app.db")));
/// assert_eq!(sqlite_file("file:data/what%3F.db?mode=ro"), Some(PathBuf::from("data/what?.db")));
/// assert_eq!(sqlite_file("app 100%.db"), Some(PathBuf::from("app 100%.db")));
/// assert_eq!(sqlite_file(":memory:"), None);
/// assert_eq!(sqlite_file("postgres://localhost/app"), None);
/// ```
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return None;
    }
    let location = sqlite_path(url);
    if is_empty_location(location) {
        return None;
    }
    match location.strip_prefix("file:") {
        Some(rest) => {
            let (path, params) = split_uri(rest);
            let path = uri_path(path);
            if path == ":memory:" || params.split('&').any(|p| p == "mode=memory") {
                return None;
            }
            Some(path_from_bytes(percent_decode(path)))
        }
        None if location == ":memory:" => None,
        None => Some(PathBuf::from(location)),
    }
}

/// The SQLite URI that opens the database of `url` with `mode` (`ro`, `rw` or `rwc`) and the given
/// extra parameters (`immutable=1`). A path becomes `file:PATH` (`file://PATH` when absolute, so that a
/// `//` path is not read as an authority), with `%`, `?` and `#` percent-encoded; a `file:` URI keeps
/// its path and parameters, its `mode` replaced.
pub(crate) fn sqlite_uri(url: &str, mode: &str, extra: &[&str]) -> String {
    let location = sqlite_path(url);
    let (base, mut params): (Cow<'_, str>, Vec<&str>) = match location.strip_prefix("file:") {
        Some(rest) => {
            let (path, query) = split_uri(rest);
            (
                Cow::Owned(format!("file:{path}")),
                query.split('&').filter(|p| !p.is_empty() && !p.starts_with("mode=")).collect(),
            )
        }
        None => (Cow::Owned(path_uri(location)), Vec::new()),
    };
    let mode = format!("mode={mode}");
    params.push(&mode);
    for p in extra {
        if !params.contains(p) {
            params.push(p);
        }
    }
    format!("{base}?{}", params.join("&"))
}

/// The SQLite URI that opens the database of `url` read-only: `file:PATH?mode=ro` (`file:///abs` for an
/// absolute path), with the characters URIs reserve (`?`, `#`, `%`) percent-encoded; a `file:` URI
/// keeps its parameters and gets `mode=ro`.
///
/// ```
/// use diesel_vector::database::sqlite_read_only_uri;
///
/// assert_eq!(sqlite_read_only_uri("sqlite:///var/app.db"), "file:///var/app.db?mode=ro");
/// assert_eq!(sqlite_read_only_uri("//var/app.db"), "file:////var/app.db?mode=ro");
/// assert_eq!(sqlite_read_only_uri("data/what?.db"), "file:data/what%3F.db?mode=ro");
/// assert_eq!(sqlite_read_only_uri("file:app.db?cache=shared&mode=rwc"), "file:app.db?cache=shared&mode=ro");
/// ```
pub fn sqlite_read_only_uri(url: &str) -> String {
    sqlite_uri(url, "ro", &[])
}

/// `file:` + the path, percent-encoding what a URI reserves; `file://` + it when absolute.
fn path_uri(path: &str) -> String {
    let mut uri = String::with_capacity(path.len() + 16);
    uri.push_str(if path.starts_with('/') { "file://" } else { "file:" });
    for c in path.chars() {
        match c {
            '?' => uri.push_str("%3F"),
            '#' => uri.push_str("%23"),
            '%' => uri.push_str("%25"),
            c => uri.push(c),
        }
    }
    uri
}

/// A `file:` URI after its scheme, split into its path (authority included) and its query; a fragment
/// (`#...`) is dropped, as SQLite does.
fn split_uri(rest: &str) -> (&str, &str) {
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    rest.split_once('?').unwrap_or((rest, ""))
}

/// The path of a URI's path part: after `//authority` when there is one.
fn uri_path(path: &str) -> &str {
    match path.strip_prefix("//") {
        Some(after) => after.find('/').map_or("", |slash| &after[slash..]),
        None => path,
    }
}

/// `%HH` decoded; a `%` not followed by two hex digits is kept as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| char::from(b).to_digit(16);
            if let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
            {
                // Two hex digits: at most 0xff.
                out.push(u8::try_from(h * 16 + l).unwrap_or(u8::MAX));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(unix)]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path form, with the URI that opens it read-only.
    const FORMS: &[(&str, &str, &str)] = &[
        // (URL, file it names, read-only URI)
        ("app.db", "app.db", "file:app.db?mode=ro"),
        ("data/app.db", "data/app.db", "file:data/app.db?mode=ro"),
        ("./app.db", "./app.db", "file:./app.db?mode=ro"),
        ("/tmp/app.db", "/tmp/app.db", "file:///tmp/app.db?mode=ro"),
        ("//tmp/app.db", "//tmp/app.db", "file:////tmp/app.db?mode=ro"),
        ("sqlite://app.db", "app.db", "file:app.db?mode=ro"),
        ("sqlite:///tmp/app.db", "/tmp/app.db", "file:///tmp/app.db?mode=ro"),
        ("sqlite:////tmp/app.db", "//tmp/app.db", "file:////tmp/app.db?mode=ro"),
        ("what?.db", "what?.db", "file:what%3F.db?mode=ro"),
        ("/tmp/a#b.db", "/tmp/a#b.db", "file:///tmp/a%23b.db?mode=ro"),
        ("100%.db", "100%.db", "file:100%25.db?mode=ro"),
        ("%41.db", "%41.db", "file:%2541.db?mode=ro"),
        ("with space.db", "with space.db", "file:with space.db?mode=ro"),
        ("unicodé ☃.db", "unicodé ☃.db", "file:unicodé ☃.db?mode=ro"),
        ("a&b=c.db", "a&b=c.db", "file:a&b=c.db?mode=ro"),
        ("file:app.db", "app.db", "file:app.db?mode=ro"),
        ("file:app.db?mode=rwc&cache=shared", "app.db", "file:app.db?cache=shared&mode=ro"),
        ("file:///tmp/app.db", "/tmp/app.db", "file:///tmp/app.db?mode=ro"),
        ("file://localhost/tmp/app.db", "/tmp/app.db", "file://localhost/tmp/app.db?mode=ro"),
        ("file:what%3F.db#fragment", "what?.db", "file:what%3F.db?mode=ro"),
        ("sqlite://file:app.db", "app.db", "file:app.db?mode=ro"),
    ];

    #[test]
    fn every_path_form_names_its_file_and_gets_a_read_only_uri() {
        for (url, file, uri) in FORMS {
            assert_eq!(sqlite_file(url), Some(PathBuf::from(file)), "{url}");
            assert_eq!(sqlite_read_only_uri(url), *uri, "{url}");
            assert!(!is_empty_location(sqlite_path(url)), "{url}");
        }
    }

    #[test]
    fn other_modes_and_extra_parameters() {
        assert_eq!(sqlite_uri("/tmp/app.db", "rw", &[]), "file:///tmp/app.db?mode=rw");
        assert_eq!(sqlite_uri("app.db", "ro", &["immutable=1"]), "file:app.db?mode=ro&immutable=1");
        assert_eq!(
            sqlite_uri("file:app.db?immutable=1&mode=rw", "ro", &["immutable=1"]),
            "file:app.db?immutable=1&mode=ro"
        );
    }

    #[test]
    fn in_memory_databases_name_no_file() {
        for url in [":memory:", "sqlite://:memory:", "file::memory:", "file:shared?mode=memory&cache=shared"] {
            assert_eq!(sqlite_file(url), None, "{url}");
            assert!(!is_empty_location(sqlite_path(url)), "{url}");
        }
    }

    #[test]
    fn empty_locations_are_recognised() {
        for url in ["", " ", "sqlite://", "sqlite:// ", "file:", "file:?mode=rwc", "file://localhost", "file:#x"] {
            assert!(is_empty_location(sqlite_path(url)), "{url:?}");
            assert_eq!(sqlite_file(url), None, "{url:?}");
        }
        assert!(!is_empty_location("file:?mode=memory"));
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("a%20b%2"), b"a b%2");
        assert_eq!(percent_decode("%zz%4a"), b"%zzJ");
        assert_eq!(percent_decode("%ff"), [0xff]);
    }
}
