//! Findings that depend on the versions of pgvector, sqlite-vec and SQLite, as pure functions: a
//! [`Version`] parsed from what each reports, and [`findings`] from the versions and a few facts about the
//! database (which indexes exist). Each finding says what is wrong and what to do.
//!
//! | software | versions | problem | level |
//! |---|---|---|---|
//! | pgvector | before 0.8.3, with an HNSW index | VACUUM during concurrent inserts can corrupt the index (fixed in 0.8.3; 0.8.2 fixed a buffer overflow in parallel HNSW builds, CVE-2026-3172) | action |
//! | pgvector | before 0.8.0, with an ANN index | no iterative index scans: the settings the crate's search makes are ignored, filtered searches fall back to exact scans | warning |
//! | sqlite-vec | 0.1.10 pre-releases | builds that stop with SIGILL on CPUs without AVX2; ANN indexes that ignore distance, rowid and partition filters | action |
//! | SQLite | before 3.38 | vec0 cannot apply partition keys or `rowid IN` filters to KNN queries | action |
//! | SQLite | before 3.51.3 | the WAL-reset bug: a rare corruption of WAL databases (the crate's default journal) | warning |

use std::cmp::Ordering;
use std::fmt;

use super::{Finding, Level};

/// A version `MAJOR.MINOR[.PATCH][-PRE]`, as pgvector (`0.8.0`), sqlite-vec (`v0.1.10-alpha.2`), SQLite
/// (`3.53.2`) and PostgreSQL (`15.18 (Debian 15.18-1)`) print them. Ordered as semantic versions: a
/// pre-release comes before its release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    /// The numbers: major, minor, patch (0 when absent).
    pub(crate) numbers: [u64; 3],
    /// The pre-release tag (`alpha.2`), if any.
    pub(crate) pre: Option<String>,
}

impl Version {
    /// Parses the first version in `text`: an optional `v`, two or three dot-separated numbers, an
    /// optional `-PRE` tag; whatever follows a space or a parenthesis is ignored. `None` when `text` does
    /// not start with a version.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
        let word = text.split([' ', '(', '+']).next().unwrap_or("");
        let (numbers, pre) = match word.split_once('-') {
            Some((numbers, pre)) if !pre.is_empty() => (numbers, Some(pre.to_owned())),
            Some(_) => return None,
            None => (word, None),
        };
        let parts: Vec<&str> = numbers.split('.').collect();
        if !(2..=3).contains(&parts.len()) {
            return None;
        }
        let mut out = [0u64; 3];
        for (slot, part) in out.iter_mut().zip(&parts) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            *slot = part.parse().ok()?;
        }
        Some(Self { numbers: out, pre })
    }

    /// `MAJOR.MINOR.PATCH` without a pre-release.
    pub(crate) const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self { numbers: [major, minor, patch], pre: None }
    }

    /// Whether this is a pre-release (`-alpha.2`).
    pub(crate) fn is_pre_release(&self) -> bool {
        self.pre.is_some()
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.numbers.cmp(&other.numbers).then_with(|| match (&self.pre, &other.pre) {
            (None, None) => Ordering::Equal,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => compare_pre(a, b),
        })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [major, minor, patch] = self.numbers;
        write!(f, "{major}.{minor}.{patch}")?;
        match &self.pre {
            Some(pre) => write!(f, "-{pre}"),
            None => Ok(()),
        }
    }
}

/// Semantic versioning's order of pre-release tags: dot-separated identifiers, numeric ones by value
/// and before alphanumeric ones, a shorter list first when all else is equal.
fn compare_pre(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// What the version findings are drawn from. A version that is absent or does not parse gives no
/// finding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VersionFacts<'a> {
    /// pgvector's version in the database.
    pub(crate) pgvector: Option<&'a str>,
    /// An HNSW index exists on a vector column.
    pub(crate) hnsw_index: bool,
    /// An approximate index (HNSW or ivfflat) exists, so the crate's searches set iterative scans.
    pub(crate) ann_index: bool,
    /// The SQLite library's version.
    pub(crate) sqlite: Option<&'a str>,
    /// sqlite-vec's version on the connection.
    pub(crate) sqlite_vec: Option<&'a str>,
}

/// pgvector's first release with the HNSW vacuum fixes.
const PGVECTOR_HNSW_VACUUM_FIXED: Version = Version::new(0, 8, 3);
/// pgvector's first release with iterative index scans.
const PGVECTOR_ITERATIVE_SCANS: Version = Version::new(0, 8, 0);
/// SQLite's first release that passes partition-key and `IN` constraints to virtual tables.
const SQLITE_VTAB_CONSTRAINTS: Version = Version::new(3, 38, 0);
/// SQLite's first release without the WAL-reset bug.
const SQLITE_WAL_RESET_FIXED: Version = Version::new(3, 51, 3);

/// The findings the versions call for, most serious first.
pub(crate) fn findings(facts: &VersionFacts<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |level, message: String| out.push(Finding { level, message, remedy: None });
    if let Some(v) = facts.pgvector.and_then(Version::parse) {
        if facts.hnsw_index && v < PGVECTOR_HNSW_VACUUM_FIXED {
            push(
                Level::Action,
                format!(
                    "pgvector {v} can corrupt HNSW indexes when VACUUM runs during concurrent inserts (fixed in \
                     0.8.3; 0.8.2 also fixed a buffer overflow in parallel HNSW builds, CVE-2026-3172): upgrade \
                     pgvector to 0.8.3 or later, run `ALTER EXTENSION vector \
                     UPDATE`, then rebuild the HNSW index"
                ),
            );
        }
        if facts.ann_index && v < PGVECTOR_ITERATIVE_SCANS {
            push(
                Level::Warning,
                format!(
                    "pgvector {v} has no iterative index scans (added in 0.8.0): filtered searches on the vector \
                     index can return fewer rows than asked and then rerun as exact scans; upgrade pgvector to \
                     0.8.3 or later"
                ),
            );
        }
    }
    if let Some(v) = facts.sqlite_vec.and_then(Version::parse) {
        if v.is_pre_release() && v.numbers == [0, 1, 10] {
            push(
                Level::Action,
                format!(
                    "sqlite-vec {v} is a pre-release: its builds can stop with an illegal instruction (SIGILL) \
                     on CPUs without AVX2, and its approximate indexes (rescore, DiskANN, IVF) ignore distance, \
                     rowid and partition filters; use sqlite-vec 0.1.9, as diesel-vector's `sqlite-vec` feature \
                     does"
                ),
            );
        }
    }
    if let Some(v) = facts.sqlite.and_then(Version::parse) {
        if v < SQLITE_VTAB_CONSTRAINTS {
            push(
                Level::Action,
                format!(
                    "SQLite {v} is older than 3.38: sqlite-vec's vec0 index cannot apply partition keys or rowid \
                     filters to nearest-neighbour queries; build diesel-vector with the `bundled` feature (a \
                     current SQLite) or upgrade the system's libsqlite3"
                ),
            );
        }
        if v < SQLITE_WAL_RESET_FIXED {
            push(
                Level::Warning,
                format!(
                    "SQLite {v} has the WAL-reset bug fixed in 3.51.3 (a rare corruption of databases in WAL \
                     mode, which diesel-vector uses): build with the `bundled` feature or upgrade the system's \
                     libsqlite3"
                ),
            );
        }
    }
    out.sort_by_key(|f| f.level);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap_or_else(|| panic!("{text:?} should parse"))
    }

    #[test]
    fn versions_parse_as_each_program_prints_them() {
        assert_eq!(v("0.8.0"), Version::new(0, 8, 0));
        assert_eq!(v("v0.1.9"), Version::new(0, 1, 9));
        assert_eq!(v("v0.1.10-alpha.2"), Version { numbers: [0, 1, 10], pre: Some("alpha.2".into()) });
        assert_eq!(v("3.53.2"), Version::new(3, 53, 2));
        assert_eq!(v("15.18 (Debian 15.18-1.pgdg120+1)"), Version::new(15, 18, 0));
        assert_eq!(v(" 16.4"), Version::new(16, 4, 0));
        assert_eq!(v("1.2.3+build.7"), Version::new(1, 2, 3));
        for bad in ["", "8", "x.y", "1..2", "1.2.3.4", "1.2-", "-1.2", "1.2a", "v", "1.99999999999999999999"] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
        assert_eq!(v("v0.1.10-alpha.2").to_string(), "0.1.10-alpha.2");
    }

    #[test]
    fn versions_order_numerically_with_pre_releases_first() {
        let ordered = [
            "0.1.9",
            "0.1.10-alpha.1",
            "0.1.10-alpha.2",
            "0.1.10-alpha.10",
            "0.1.10-beta",
            "0.1.10",
            "0.8.0",
            "0.8.3",
            "0.10.0",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("3.38").cmp(&v("3.38.0")), Ordering::Equal);
        assert!(v("1.0.0-alpha") < v("1.0.0-alpha.1"));
        assert!(v("1.0.0-1") < v("1.0.0-alpha"), "numeric identifiers first");
    }

    fn messages(facts: &VersionFacts<'_>) -> Vec<(Level, String)> {
        findings(facts).into_iter().map(|f| (f.level, f.message)).collect()
    }

    #[test]
    fn pgvector_before_0_8_3_with_an_hnsw_index_must_be_upgraded() {
        let facts = VersionFacts { pgvector: Some("0.8.0"), hnsw_index: true, ann_index: true, ..Default::default() };
        let found = messages(&facts);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, Level::Action);
        assert!(found[0].1.starts_with("pgvector 0.8.0 can corrupt HNSW indexes"), "{}", found[0].1);
        assert!(found[0].1.contains("upgrade pgvector to 0.8.3 or later"));
        for fixed in ["0.8.3", "0.8.6", "1.0.0"] {
            assert!(findings(&VersionFacts { pgvector: Some(fixed), ..facts.clone() }).is_empty(), "{fixed}");
        }
        assert!(findings(&VersionFacts { hnsw_index: false, ..facts }).is_empty(), "ivfflat only: no finding");
    }

    #[test]
    fn pgvector_before_0_8_0_ignores_the_iterative_scans_searches_set() {
        let facts = VersionFacts { pgvector: Some("0.7.4"), ann_index: true, ..Default::default() };
        let found = messages(&facts);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, Level::Warning);
        assert!(found[0].1.contains("no iterative index scans (added in 0.8.0)"), "{}", found[0].1);
        let with_hnsw = messages(&VersionFacts { hnsw_index: true, ..facts.clone() });
        assert_eq!(with_hnsw.len(), 2, "both, the corruption first: {with_hnsw:?}");
        assert_eq!(with_hnsw[0].0, Level::Action);
        assert!(findings(&VersionFacts { ann_index: false, ..facts }).is_empty(), "no index, no scan settings");
    }

    #[test]
    fn sqlite_vec_pre_releases_of_0_1_10_are_flagged() {
        for alpha in ["v0.1.10-alpha.1", "v0.1.10-alpha.3"] {
            let found = messages(&VersionFacts { sqlite_vec: Some(alpha), ..Default::default() });
            assert_eq!(found.len(), 1, "{alpha}");
            assert_eq!(found[0].0, Level::Action);
            assert!(found[0].1.contains("SIGILL") && found[0].1.contains("use sqlite-vec 0.1.9"), "{}", found[0].1);
        }
        for fine in ["v0.1.9", "v0.1.10", "v0.1.6"] {
            assert!(findings(&VersionFacts { sqlite_vec: Some(fine), ..Default::default() }).is_empty(), "{fine}");
        }
    }

    #[test]
    fn old_sqlite_libraries_are_flagged() {
        let found = messages(&VersionFacts { sqlite: Some("3.37.2"), ..Default::default() });
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, Level::Action);
        assert!(found[0].1.starts_with("SQLite 3.37.2 is older than 3.38"), "{}", found[0].1);
        assert_eq!(found[1].0, Level::Warning);
        assert!(found[1].1.contains("WAL-reset bug fixed in 3.51.3"), "{}", found[1].1);

        let debian = messages(&VersionFacts { sqlite: Some("3.40.1"), ..Default::default() });
        assert_eq!(debian.len(), 1, "{debian:?}");
        assert_eq!(debian[0].0, Level::Warning);
        for fine in ["3.51.3", "3.53.2"] {
            assert!(findings(&VersionFacts { sqlite: Some(fine), ..Default::default() }).is_empty(), "{fine}");
        }
    }

    #[test]
    fn unknown_or_unparsable_versions_give_no_finding() {
        let facts = VersionFacts {
            pgvector: Some("dev"),
            hnsw_index: true,
            ann_index: true,
            sqlite: Some("unknown"),
            sqlite_vec: None,
        };
        assert!(findings(&facts).is_empty());
        assert!(findings(&VersionFacts::default()).is_empty());
    }
}
