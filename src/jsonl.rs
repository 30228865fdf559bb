//! Fragments and their embeddings as JSON lines, to move data to and from other tools, bit-exact.
//!
//! One line per fragment, its embeddings nested (their `fragment_id` is the fragment's `id`):
//!
//! ```text
//! {"id":1,"content":"Cats purr.","created_at":"2025-01-01T12:00:00","updated_at":null,"embeddings":[{"id":7,"provider":"openai","model":"text-embedding-3-small","dims":1536,"content_hash":"9f2c","created_at":"2025-01-01T12:00:00.25","updated_at":null,"embedding":[0.25,-0,1e-45,3.4028235e38,...]}]}
//! ```
//!
//! Timestamps are ISO 8601 without a zone (`null` when the column is NULL), as the columns hold them.
//! Each float is written in the shortest form that reads back to the same `f32` (`-0` stays `-0`, very
//! large and small magnitudes in exponent form), and [`import`] parses each straight from the text with
//! Rust's correctly rounded `f32` parser, never through `f64`: every bit survives. A NULL embedding is
//! `"embedding":null`.
//!
//! [`export`] reads one snapshot in id order, `batch_size` fragments at a time; invalid rows (see
//! [`crate::copy`]) stop it unless skipped. [`import`] migrates the target, then writes `batch_size`
//! lines per transaction with ids kept and `ON CONFLICT (id) DO NOTHING`, reads each batch back in the
//! same transaction and compares it row by row (so a run again after an interruption is harmless, and a
//! different row already holding an id is an error naming it), moves the id generators past the
//! imported ids, and brings an SQLite target's vec0 index up to date. Both report counts and
//! [`Checksum`](crate::copy::Checksum)s computed as [`crate::copy`] does, so an export's and an import's can be compared.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, Write};

use chrono::NaiveDateTime;
use diesel::result::Error as DieselError;
use serde_json::value::RawValue;

use crate::copy::{CopyOptions, InvalidRow, Sums, TargetIndex};
use crate::database::{dispatch, DatabaseConnection};
use crate::migrations::MigrationError;
use crate::transfer::{
    keep_reported, partition_checked, EmbeddingRow, FragmentRow, IndexUpdateError, Range, RawEmbedding, Store,
    StoredVector, Table, BEFORE_ALL,
};
use crate::Vector;

const TIMESTAMP: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// What [`export`] or [`import`] moved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonlReport {
    /// Fragments written (export) or read (import), counted and checksummed.
    pub fragments: Sums,
    /// Embeddings written or read, counted and checksummed.
    pub embeddings: Sums,
    /// Import: rows inserted (the rest were already there, identical).
    pub inserted: u64,
    /// Invalid rows left out (`skip_invalid`), the first 1000.
    pub skipped: Vec<InvalidRow>,
    /// How many were left out in all.
    pub skipped_count: u64,
    /// Import: the target's vector index afterwards.
    pub index: Option<TargetIndex>,
}

impl JsonlReport {
    fn skip(&mut self, rows: Vec<InvalidRow>) {
        self.skipped_count += rows.len() as u64;
        keep_reported(&mut self.skipped, rows);
    }
}

/// Why an export or import failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum JsonlError {
    /// The database could not be opened or migrated.
    Database(MigrationError),
    /// The database has no `fragments` / `fragment_embeddings` tables.
    NotMigrated,
    /// Reading or writing the JSON lines failed.
    Io(io::Error),
    /// A line is not a fragment in this format.
    Line {
        /// Its number, from 1.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// Invalid rows (without `skip_invalid`); nothing of their batch was written.
    InvalidRows(Vec<InvalidRow>),
    /// Import: rows with these ids already exist on the target with other contents; their batch was
    /// rolled back.
    Conflict {
        /// The table.
        table: &'static str,
        /// The ids.
        ids: Vec<i64>,
    },
    /// A query failed.
    Query(DieselError),
    /// The SQLite target's vector index could not be brought up to date (the rows are imported).
    Index(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for JsonlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Database(e) => write!(f, "{e}"),
            Self::NotMigrated => f.write_str("the database has no fragments and fragment_embeddings tables"),
            Self::Io(e) => write!(f, "{e}"),
            Self::Line { line, reason } => write!(f, "line {line}: {reason}"),
            Self::InvalidRows(rows) => {
                write!(f, "{} invalid row(s); nothing of their batch was written (--skip-invalid skips them):", rows.len())?;
                for row in rows {
                    write!(f, "\n  {row}")?;
                }
                Ok(())
            }
            Self::Conflict { table, ids } => write!(
                f,
                "{table} rows with ids {ids:?} already exist on the target with other contents; their batch was rolled back"
            ),
            Self::Query(e) => write!(f, "query failed: {e}"),
            Self::Index(e) => write!(f, "the rows were imported but the vector index was not updated: {e}"),
        }
    }
}

impl std::error::Error for JsonlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Database(e) => Some(e),
            Self::Io(e) => Some(e),
            Self::Query(e) => Some(e),
            Self::Index(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<DieselError> for JsonlError {
    fn from(e: DieselError) -> Self {
        Self::Query(e)
    }
}

impl From<io::Error> for JsonlError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<IndexUpdateError> for JsonlError {
    fn from(e: IndexUpdateError) -> Self {
        match e {
            IndexUpdateError::Query(e) => Self::Query(e),
            #[cfg(feature = "sqlite")]
            IndexUpdateError::Index(e) => Self::Index(Box::new(e)),
        }
    }
}

/// Writes every fragment of `conn` with its embeddings to `out`, one JSON line each, in id order;
/// `on_batch` hears the fragments written so far after each batch. Open SQLite sources with
/// [`DatabaseConnection::establish_read_only`].
///
/// # Errors
///
/// [`JsonlError::InvalidRows`] for invalid embeddings (an orphan, a NaN...) unless
/// `options.skip_invalid`, or a failing query or write.
pub fn export(
    conn: &mut DatabaseConnection,
    out: &mut dyn Write,
    options: &CopyOptions,
    on_batch: &mut dyn FnMut(u64),
) -> Result<JsonlReport, JsonlError> {
    dispatch!(conn, c => export_from(c, out, options, on_batch))
}

fn export_from<S: Store>(
    store: &mut S,
    out: &mut dyn Write,
    options: &CopyOptions,
    on_batch: &mut dyn FnMut(u64),
) -> Result<JsonlReport, JsonlError> {
    if !store.tables_exist().map_err(JsonlError::Database)? {
        return Err(JsonlError::NotMigrated);
    }
    let limit = options.limit();
    let mut report = JsonlReport::default();
    let mut line = Vec::new();
    store.snapshot(|store| {
        let mut after = BEFORE_ALL;
        loop {
            let fragments = store.fragments(Range { after, upto: i64::MAX, limit })?;
            // The last batch also takes embeddings beyond the last fragment: orphans, reported below.
            let last_batch = fragments.len() < usize::try_from(limit).unwrap_or(usize::MAX);
            let upto = match fragments.last() {
                Some(f) if !last_batch => f.id,
                _ => i64::MAX,
            };
            let (embeddings, invalid) =
                partition_checked(store.embeddings_of_fragments(after, upto)?, RawEmbedding::validate);
            if !invalid.is_empty() {
                if !options.skip_invalid {
                    return Err(JsonlError::InvalidRows(invalid));
                }
                report.skip(invalid);
            }
            let mut rest = embeddings.as_slice();
            for fragment in &fragments {
                let n = rest.iter().take_while(|e| e.fragment_id == fragment.id).count();
                let (own, tail) = rest.split_at(n);
                rest = tail;
                line.clear();
                write_line(&mut line, fragment, own)?;
                out.write_all(&line)?;
                report.fragments.add(fragment.hash());
                for e in own {
                    report.embeddings.add(e.hash());
                }
            }
            on_batch(report.fragments.rows);
            match fragments.last() {
                Some(f) if !last_batch => after = f.id,
                _ => break,
            }
        }
        out.flush()?;
        Ok(())
    })?;
    Ok(report)
}

fn write_line(out: &mut Vec<u8>, f: &FragmentRow, embeddings: &[EmbeddingRow]) -> io::Result<()> {
    write!(out, "{{\"id\":{},\"content\":", f.id)?;
    serde_json::to_writer(&mut *out, &f.content)?;
    write_timestamps(out, f.created_at, f.updated_at)?;
    out.extend_from_slice(b",\"embeddings\":[");
    for (i, e) in embeddings.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write!(out, "{{\"id\":{},\"provider\":", e.id)?;
        serde_json::to_writer(&mut *out, &e.provider)?;
        out.extend_from_slice(b",\"model\":");
        serde_json::to_writer(&mut *out, &e.model)?;
        write!(out, ",\"dims\":{},\"content_hash\":", e.dims)?;
        serde_json::to_writer(&mut *out, &e.content_hash)?;
        write_timestamps(out, e.created_at, e.updated_at)?;
        out.extend_from_slice(b",\"embedding\":");
        match &e.embedding {
            // Validated when read: decoding cannot fail; Vector's Display is the shortest exact form.
            Some(bytes) => match crate::codec::decode_sqlite(bytes) {
                Ok(v) => write!(out, "{v}")?,
                Err(e) => return Err(io::Error::other(e)),
            },
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}\n");
    Ok(())
}

fn write_timestamps(
    out: &mut Vec<u8>,
    created: Option<NaiveDateTime>,
    updated: Option<NaiveDateTime>,
) -> io::Result<()> {
    for (name, t) in [("created_at", created), ("updated_at", updated)] {
        match t {
            Some(t) => write!(out, ",\"{name}\":\"{}\"", t.format(TIMESTAMP))?,
            None => write!(out, ",\"{name}\":null")?,
        }
    }
    Ok(())
}

/// Reads JSON lines from `input` into `conn` (migrated first); `on_batch` hears the lines imported so
/// far after each batch. See the [module](self) docs.
///
/// # Errors
///
/// [`JsonlError::Line`] for a line that is not a fragment in this format (always; `skip_invalid` only
/// skips invalid embeddings), [`JsonlError::InvalidRows`], [`JsonlError::Conflict`], or a failing query.
pub fn import(
    conn: &mut DatabaseConnection,
    input: &mut dyn BufRead,
    options: &CopyOptions,
    on_batch: &mut dyn FnMut(u64),
) -> Result<JsonlReport, JsonlError> {
    conn.run_pending_migrations().map_err(JsonlError::Database)?;
    dispatch!(conn, c => import_into(c, input, options, on_batch))
}

fn import_into<T: Store>(
    store: &mut T,
    input: &mut dyn BufRead,
    options: &CopyOptions,
    on_batch: &mut dyn FnMut(u64),
) -> Result<JsonlReport, JsonlError> {
    let batch = options.batch_size;
    let mut report = JsonlReport::default();
    let mut fragments = Vec::with_capacity(batch);
    let mut embeddings = Vec::new();
    let mut text = String::new();
    let mut number = 0u64;
    loop {
        text.clear();
        let eof = input.read_line(&mut text)? == 0;
        if !eof {
            number += 1;
        }
        if !eof && !text.trim().is_empty() {
            let (fragment, own) = parse_line(&text).map_err(|reason| JsonlError::Line { line: number, reason })?;
            let (valid, invalid) = partition_checked(own, RawEmbedding::validate);
            embeddings.extend(valid);
            if !invalid.is_empty() {
                if !options.skip_invalid {
                    return Err(JsonlError::InvalidRows(invalid));
                }
                report.skip(invalid);
            }
            fragments.push(fragment);
        }
        if (eof && !fragments.is_empty()) || fragments.len() >= batch {
            report.inserted += write_verified(store, &fragments, &embeddings)?;
            for f in &fragments {
                report.fragments.add(f.hash());
            }
            for e in &embeddings {
                report.embeddings.add(e.hash());
            }
            fragments.clear();
            embeddings.clear();
            on_batch(number);
        }
        if eof {
            break;
        }
    }
    report.index = Some(store.after_load()?);
    Ok(report)
}

/// Inserts one batch in one transaction, reads it back and compares every row; then moves the id
/// generators past it. Returns the rows inserted.
fn write_verified<T: Store>(
    store: &mut T,
    fragments: &[FragmentRow],
    embeddings: &[EmbeddingRow],
) -> Result<u64, JsonlError> {
    let inserted = store.write_batch(|t| -> Result<u64, JsonlError> {
        let n = t.insert_fragments(fragments)? + t.insert_embeddings(embeddings)?;
        let ids: Vec<i64> = fragments.iter().map(|f| f.id).collect();
        let back: HashMap<i64, u64> = t.fragments_by_id(&ids)?.iter().map(|f| (f.id, f.hash())).collect();
        let differing: Vec<i64> =
            fragments.iter().filter(|f| back.get(&f.id) != Some(&f.hash())).map(|f| f.id).collect();
        if !differing.is_empty() {
            return Err(JsonlError::Conflict { table: Table::Fragments.name(), ids: differing });
        }
        let ids: Vec<i64> = embeddings.iter().map(|e| e.id).collect();
        let back: HashMap<i64, Option<u64>> =
            t.embeddings_by_id(&ids)?.into_iter().map(|r| (r.row.id, r.validate().ok().map(|e| e.hash()))).collect();
        let differing: Vec<i64> =
            embeddings.iter().filter(|e| back.get(&e.id) != Some(&Some(e.hash()))).map(|e| e.id).collect();
        if !differing.is_empty() {
            return Err(JsonlError::Conflict { table: Table::Embeddings.name(), ids: differing });
        }
        Ok(n as u64)
    })?;
    if let Some(max) = fragments.iter().map(|f| f.id).max() {
        store.reserve_ids(Table::Fragments, max)?;
    }
    if let Some(max) = embeddings.iter().map(|e| e.id).max() {
        store.reserve_ids(Table::Embeddings, max)?;
    }
    Ok(inserted)
}

type Object = HashMap<String, Box<RawValue>>;

fn parse_line(text: &str) -> Result<(FragmentRow, Vec<RawEmbedding>), String> {
    let object: Object = serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
    let fragment = FragmentRow {
        id: field(&object, "id", |s| serde_json::from_str::<i64>(s))?,
        content: field(&object, "content", |s| serde_json::from_str::<String>(s))?,
        created_at: timestamp(&object, "created_at")?,
        updated_at: timestamp(&object, "updated_at")?,
    };
    let items: Vec<Object> = match object.get("embeddings") {
        None => Vec::new(),
        Some(raw) => {
            serde_json::from_str(raw.get()).map_err(|e| format!("\"embeddings\" is not a list of objects: {e}"))?
        }
    };
    let mut embeddings = Vec::with_capacity(items.len());
    for item in &items {
        let id = field(item, "id", |s| serde_json::from_str::<i64>(s))?;
        let stored = match item.get("embedding").map(|raw| raw.get()) {
            None | Some("null") => StoredVector::Null,
            Some(text) => match text.parse::<Vector>() {
                Ok(v) => StoredVector::Blob(crate::codec::encode_sqlite(&v).into_owned()),
                // Reported against the embedding's id by validate(), like any invalid vector.
                Err(e) => StoredVector::NotABlob(format!("an invalid vector ({e})")),
            },
        };
        embeddings.push(RawEmbedding {
            row: EmbeddingRow {
                id,
                fragment_id: fragment.id,
                provider: field(item, "provider", |s| serde_json::from_str::<String>(s))?,
                model: field(item, "model", |s| serde_json::from_str::<String>(s))?,
                dims: field(item, "dims", |s| serde_json::from_str::<i32>(s))?,
                embedding: None,
                content_hash: field(item, "content_hash", |s| serde_json::from_str::<String>(s))?,
                created_at: timestamp(item, "created_at")?,
                updated_at: timestamp(item, "updated_at")?,
            },
            stored,
            orphan: false,
        });
    }
    Ok((fragment, embeddings))
}

fn field<T>(object: &Object, name: &str, parse: impl Fn(&str) -> serde_json::Result<T>) -> Result<T, String> {
    let raw = object.get(name).ok_or_else(|| format!("\"{name}\" is missing"))?;
    parse(raw.get()).map_err(|e| format!("\"{name}\": {e}"))
}

fn timestamp(object: &Object, name: &str) -> Result<Option<NaiveDateTime>, String> {
    let Some(raw) = object.get(name) else { return Ok(None) };
    let Some(text) = serde_json::from_str::<Option<String>>(raw.get()).map_err(|e| format!("\"{name}\": {e}"))? else {
        return Ok(None);
    };
    NaiveDateTime::parse_from_str(&text, TIMESTAMP)
        .map(Some)
        .map_err(|e| format!("\"{name}\": {text:?} is not a timestamp like 2025-01-01T12:00:00.5 ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment() -> FragmentRow {
        FragmentRow {
            id: 3,
            content: "quote \" and \u{e9}\n".into(),
            created_at: NaiveDateTime::parse_from_str("2025-01-02T03:04:05.123456", TIMESTAMP).ok(),
            updated_at: None,
        }
    }

    fn embedding(values: &[f32]) -> EmbeddingRow {
        EmbeddingRow {
            id: 9,
            fragment_id: 3,
            provider: "p".into(),
            model: "m".into(),
            dims: i32::try_from(values.len()).unwrap(),
            embedding: Some(values.iter().flat_map(|x| x.to_le_bytes()).collect()),
            content_hash: "h".into(),
            created_at: None,
            updated_at: NaiveDateTime::parse_from_str("2025-01-02T03:04:05", TIMESTAMP).ok(),
        }
    }

    #[test]
    fn a_line_reads_back_bit_exact() {
        let values = [
            0.0,
            -0.0,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            -f32::from_bits(0x7f_ffff),
            0.1,
            1e-30,
        ];
        let mut line = Vec::new();
        write_line(&mut line, &fragment(), &[embedding(&values)]).unwrap();
        let text = String::from_utf8(line).unwrap();
        assert!(text.ends_with("]}\n") && !text[..text.len() - 1].contains('\n'), "{text}");
        assert!(text.contains("\"embedding\":[0,-0,3.4028235e38,-3.4028235e38,1.1754944e-38,1e-45,"), "{text}");
        let (f, embeddings) = parse_line(&text).unwrap();
        assert_eq!(f, fragment());
        let back = embeddings.into_iter().next().unwrap();
        assert_eq!(back.row.fragment_id, 3);
        // dims != 1536 makes the row invalid for the schema, but the bytes are what matter here.
        let StoredVector::Blob(bytes) = back.stored else { panic!("not a blob") };
        assert_eq!(Some(bytes), embedding(&values).embedding);
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        assert!(parse_line("[1]").unwrap_err().starts_with("not a JSON object"));
        assert_eq!(parse_line("{\"content\":\"x\"}").unwrap_err(), "\"id\" is missing");
        let err = parse_line("{\"id\":1,\"content\":\"x\",\"created_at\":\"yesterday\"}").unwrap_err();
        assert!(err.starts_with("\"created_at\": \"yesterday\" is not a timestamp"), "{err}");
    }
}
