//! An application's tables as JSON lines, to move data to and from other tools, bit-exact.
//!
//! [`export`] finds the tables as [`crate::copy`] does (every application table, or the ones named) and
//! writes, in this order:
//!
//! ```text
//! {"format":"diesel-vector-jsonl","version":1,"crate_schema":false}
//! {"table":"documents","key":["id"],"columns":[{"name":"id","type":"int64"},{"name":"lang","type":"text"},{"name":"embedding","type":"vector(3)"}]}
//! {"table":"events","key":["id"],"columns":[{"name":"id","type":"int64"},{"name":"document_id","type":"int64"},{"name":"at","type":"timestamp"},{"name":"payload","type":"bytes"}]}
//! {"table":"documents","row":{"id":1,"lang":"en","embedding":[0.25,-0.0,1e-45]}}
//! {"table":"events","row":{"id":1,"document_id":1,"at":"2025-01-02T03:04:05.250","payload":"00ff"}}
//! ```
//!
//! - The first line names the format; `crate_schema` says that the database used the crate's own
//!   `fragments` schema (an import then applies the crate's migrations to its target).
//! - Then one header line per table, parents first: its primary key and its columns with their neutral
//!   types (`int16`/`int32`/`int64`, `float32`/`float64`, `text`, `bool`, `timestamp`, `timestamptz`,
//!   `date`, `time`, `bytes`, `vector(N)`, `halfvec(N)`, `sparsevec(N)`, `bit(N)`). [`import`] reads every
//!   header before any row, so it checks
//!   that the target has every table and column, and that every type converts, before it writes anything.
//! - Then one line per row, table by table in the same order, rows in key order. Values: JSON numbers for
//!   integers; floats in the shortest form that reads back to the same bits (`float32` parsed straight
//!   as `f32`; NaN and infinities as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`); strings for text;
//!   `true`/`false`; timestamps as `YYYY-MM-DDTHH:MM:SS[.ffffff]` (with `Z` for `timestamptz`), dates as
//!   `YYYY-MM-DD`, times as `HH:MM:SS[.ffffff]`; bytes as lowercase hexadecimal; `vector` and `halfvec`
//!   as arrays of numbers, each in the shortest form that reads back to the same `f32` and parsed straight
//!   to `f32` (`-0` stays `-0`, subnormals survive); `sparsevec` as pgvector's text in a string
//!   (`"{1:1.5,4:-2}/6"`), `bit` as its digits in a string (`"0101..."`); `null` for NULL.
//! - A line holds at most [`MAX_LINE_BYTES`]; a longer one (or input with no line breaks) is an error
//!   naming its number, after reading no more than that.
//!
//! [`export`] reads one snapshot; invalid rows (see [`crate::copy`]) stop it unless skipped. [`import`]
//! migrates the target (the crate's migrations when the file says so, the application's from a folder),
//! then writes `batch_size` rows per transaction with keys kept and `ON CONFLICT (key) DO NOTHING`: before
//! each batch it reads the rows the target already holds with those keys (a different row there is
//! [`JsonlError::Conflict`] and nothing of the batch is written), after it reads the batch back and
//! compares it. Id generators move past each batch's ids. Both report row counts and
//! [`Checksum`](crate::copy::Checksum)s per table, computed as [`crate::copy`] does.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, BufRead, Read, Write};

use serde_json::value::RawValue;

use crate::copy::{catalog_error, migrate, write_rows, CopyError, CopyOptions, IndexReport, InvalidRow, Key, Sums};
use crate::database::{dispatch, DatabaseConnection};
use crate::transfer::sql::KeyRange;
use crate::transfer::table::{self, Catalog, ColumnSpec, IdGenerator, Side, TablePlan, TableSpec};
use crate::transfer::value::{self, Class, ColumnType, Value};
use crate::transfer::{check, hash_row, keep_reported, key_of, key_of_row, Store, LOOKUP_CHUNK};

/// The most bytes one line may hold (64 MiB: a row of a few vectors of 16000 dimensions takes well under
/// 1 MiB; a large BLOB, as hexadecimal, twice its size).
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// The format's name and version, on the first line.
const FORMAT: &str = "diesel-vector-jsonl";
const VERSION: u32 = 1;

/// One table's rows in an export or import.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableSums {
    /// The table.
    pub table: String,
    /// Rows written (export) or imported (import: read, and not refused by the target), counted and
    /// checksummed.
    pub rows: Sums,
    /// Import: rows inserted (the rest were already there, identical).
    pub inserted: u64,
}

/// What [`export`] or [`import`] moved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonlReport {
    /// Each table, parents first.
    pub tables: Vec<TableSums>,
    /// Import: migrations the target needed.
    pub migrations_applied: usize,
    /// Invalid rows left out (`skip_invalid`), the first 1000.
    pub skipped: Vec<InvalidRow>,
    /// How many were left out in all.
    pub skipped_count: u64,
    /// Import: the target's registered vector indexes on the imported tables, afterwards.
    pub indexes: Vec<IndexReport>,
}

impl JsonlReport {
    fn skip(&mut self, rows: Vec<InvalidRow>) {
        self.skipped_count += rows.len() as u64;
        keep_reported(&mut self.skipped, rows);
    }

    /// Rows inserted by an import, in all.
    pub fn inserted(&self) -> u64 {
        self.tables.iter().map(|t| t.inserted).sum()
    }
}

/// Whether `start`, the beginning of a JSON lines file, holds a complete first line that says the
/// exported database used diesel-vector's own schema (`"crate_schema":true`): importing it applies the
/// crate's migrations to the target first. A first line that is incomplete or not the format's is `false`.
pub fn declares_crate_schema(start: &[u8]) -> bool {
    let Some(end) = start.iter().position(|b| *b == b'\n') else { return false };
    std::str::from_utf8(&start[..end]).ok().and_then(|line| parse_meta(line).ok()).is_some_and(|m| m.crate_schema)
}

/// Why an export or import failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum JsonlError {
    /// Opening, migrating, planning, reading or writing the database failed, as it would for a copy
    /// (schema mismatches, invalid rows, queries).
    Database(CopyError),
    /// Reading or writing the JSON lines failed.
    Io(io::Error),
    /// A line is not what the format says.
    Line {
        /// Its number, from 1.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// Import: rows with these keys already exist on the target with other contents; nothing of their
    /// batch was written.
    Conflict {
        /// The table.
        table: String,
        /// Its key column(s).
        key_column: String,
        /// The keys.
        keys: Vec<Key>,
    },
    /// Import: rows read back after their batch differ from the file's.
    Verification {
        /// The table.
        table: String,
        /// The keys.
        keys: Vec<Key>,
    },
}

impl fmt::Display for JsonlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Database(e) => write!(f, "{e}"),
            Self::Io(e) => write!(f, "{e}"),
            Self::Line { line, reason } => write!(f, "line {line}: {reason}"),
            Self::Conflict { table, key_column, keys } => {
                let keys: Vec<String> = keys.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "{table} rows with {key_column} {} already exist on the target with other contents; nothing of \
                     their batch was written",
                    keys.join(", ")
                )
            }
            Self::Verification { table, keys } => {
                let keys: Vec<String> = keys.iter().map(ToString::to_string).collect();
                write!(f, "{table} rows {} read back differ from the file's", keys.join(", "))
            }
        }
    }
}

impl std::error::Error for JsonlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Database(e) => Some(e),
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CopyError> for JsonlError {
    fn from(e: CopyError) -> Self {
        Self::Database(e)
    }
}

impl From<diesel::result::Error> for JsonlError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Database(CopyError::from(e))
    }
}

impl From<io::Error> for JsonlError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

fn query(context: String) -> impl FnOnce(diesel::result::Error) -> JsonlError {
    move |source| JsonlError::Database(CopyError::Query { context, source })
}

/// Writes the database's application tables (all, or `options.tables`) to `out` as JSON lines, in the
/// format of the [module](self) docs; `on_batch` hears each table's rows written so far after each batch.
/// Open SQLite sources with [`DatabaseConnection::establish_read_only`].
///
/// # Errors
///
/// [`CopyError::InvalidRows`] (in [`JsonlError::Database`]) for invalid rows unless
/// `options.skip_invalid`, a schema the export cannot read, or a failing query or write.
pub fn export(
    conn: &mut DatabaseConnection,
    out: &mut dyn Write,
    options: &CopyOptions,
    on_batch: &mut dyn FnMut(&str, u64),
) -> Result<JsonlReport, JsonlError> {
    dispatch!(conn, c => export_from(c, out, options, on_batch))
}

fn export_from<S: Store>(
    store: &mut S,
    out: &mut dyn Write,
    options: &CopyOptions,
    on_batch: &mut dyn FnMut(&str, u64),
) -> Result<JsonlReport, JsonlError> {
    store.snapshot(|store| {
        let catalog = store.catalog().map_err(|e| catalog_error("source", e))?;
        let plans = table::plan(&catalog, None, &options.tables).map_err(CopyError::Schema)?;
        let mut report = JsonlReport::default();
        let mut line = Vec::new();
        writeln!(
            line,
            "{{\"format\":\"{FORMAT}\",\"version\":{VERSION},\"crate_schema\":{}}}",
            catalog.uses_crate_schema
        )?;
        for plan in &plans {
            write_header(&mut line, plan)?;
        }
        out.write_all(&line)?;
        for plan in &plans {
            let mut sums = TableSums { table: plan.name.clone(), ..TableSums::default() };
            let mut after: Option<Key> = None;
            loop {
                let range = KeyRange { after: after.as_ref(), upto: None, limit: Some(options.limit()) };
                let rows = store.read(plan, Side::Source, &range).map_err(query(format!("reading {}", plan.name)))?;
                let Some(last) = rows.last() else { break };
                let last = key_of(last, plan).map_err(query(format!("reading {}", plan.name)))?;
                let mut invalid = Vec::new();
                line.clear();
                for cells in rows {
                    let key = key_of(&cells, plan).map_err(query(format!("reading {}", plan.name)))?;
                    match check(plan, &key, cells) {
                        Ok(values) => {
                            write_row(&mut line, plan, &values).map_err(|e| JsonlError::Io(io::Error::other(e)))?;
                            sums.rows.add(hash_row(&values));
                        }
                        Err(bad) => invalid.push(bad),
                    }
                }
                if !invalid.is_empty() {
                    if !options.skip_invalid {
                        return Err(CopyError::InvalidRows(invalid).into());
                    }
                    report.skip(invalid);
                }
                out.write_all(&line)?;
                on_batch(&plan.name, sums.rows.rows);
                after = Some(last);
            }
            report.tables.push(sums);
        }
        out.flush()?;
        Ok(report)
    })
}

fn write_header(out: &mut Vec<u8>, plan: &TablePlan) -> io::Result<()> {
    out.extend_from_slice(b"{\"table\":");
    serde_json::to_writer(&mut *out, &plan.name)?;
    out.extend_from_slice(b",\"key\":");
    serde_json::to_writer(&mut *out, &plan.key_names().collect::<Vec<_>>())?;
    out.extend_from_slice(b",\"columns\":[");
    for (i, c) in plan.columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        serde_json::to_writer(&mut *out, &c.name)?;
        write!(out, ",\"type\":\"{}\"}}", c.target.name())?;
    }
    out.extend_from_slice(b"]}\n");
    Ok(())
}

fn write_row(out: &mut Vec<u8>, plan: &TablePlan, values: &[Value]) -> Result<(), String> {
    let io = |e: io::Error| e.to_string();
    out.extend_from_slice(b"{\"table\":");
    serde_json::to_writer(&mut *out, &plan.name).map_err(|e| e.to_string())?;
    out.extend_from_slice(b",\"row\":{");
    for (i, (v, c)) in values.iter().zip(&plan.columns).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, &c.name).map_err(|e| e.to_string())?;
        out.push(b':');
        write_value(out, v, c.target).map_err(io)?;
    }
    out.extend_from_slice(b"}}\n");
    Ok(())
}

fn write_value(out: &mut Vec<u8>, v: &Value, class: Class) -> io::Result<()> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Int(i) => write!(out, "{i}")?,
        Value::Real(r) if r.is_nan() => out.extend_from_slice(b"\"NaN\""),
        Value::Real(r) if r.is_infinite() => {
            out.extend_from_slice(if *r > 0.0 { b"\"Infinity\"" } else { b"\"-Infinity\"" })
        }
        // `{:?}` is the shortest form that reads back to the same bits, with an exponent when long.
        #[allow(clippy::cast_possible_truncation)] // a float32 column's value is an f32
        Value::Real(r) if matches!(class, Class::Real { bits: 32, .. }) => write!(out, "{:?}", *r as f32)?,
        Value::Real(r) => write!(out, "{r:?}")?,
        Value::Text(t) => serde_json::to_writer(&mut *out, t)?,
        Value::Bool(b) => write!(out, "{b}")?,
        Value::Timestamp(micros) => {
            let t = value::micros_timestamp(*micros).ok_or_else(|| io::Error::other("a timestamp out of range"))?;
            let zone = if class == Class::TimestampTz { "Z" } else { "" };
            write!(out, "\"{}{zone}\"", t.format(TIMESTAMP))?
        }
        Value::Date(days) => {
            let d = value::days_date(*days).ok_or_else(|| io::Error::other("a date out of range"))?;
            write!(out, "\"{}\"", d.format("%Y-%m-%d"))?
        }
        Value::Time(micros) => {
            let t = value::micros_time(*micros).ok_or_else(|| io::Error::other("a time out of range"))?;
            write!(out, "\"{}\"", t.format("%H:%M:%S%.f"))?
        }
        Value::Bytes(b) => {
            out.push(b'"');
            for byte in b {
                write!(out, "{byte:02x}")?;
            }
            out.push(b'"');
        }
        Value::Vector(blob) => {
            let Class::Vector { element, .. } = class else {
                return Err(io::Error::other("a vector value in a column that is not a vector"));
            };
            crate::transfer::vector::write_json(element, blob, out).map_err(io::Error::other)?
        }
    }
    Ok(())
}

const TIMESTAMP: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// Reads a JSON value of a column of `class` (as the file's header types it).
fn parse_value(raw: &RawValue, class: Class) -> Result<Value, String> {
    let text = raw.get();
    if text == "null" {
        return Ok(Value::Null);
    }
    let string = || serde_json::from_str::<String>(text).map_err(|_| format!("{text} is not a string"));
    Ok(match class {
        Class::Integer { .. } => {
            Value::Int(serde_json::from_str(text).map_err(|_| format!("{text} is not an integer"))?)
        }
        Class::Real { bits, .. } => {
            let special = match text {
                "\"NaN\"" => Some(f64::NAN),
                "\"Infinity\"" => Some(f64::INFINITY),
                "\"-Infinity\"" => Some(f64::NEG_INFINITY),
                _ => None,
            };
            let number = |t: &str| -> Result<f64, String> {
                if !t.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
                    return Err(format!("{t} is not a number"));
                }
                if bits == 32 {
                    t.parse::<f32>().map(f64::from).map_err(|_| format!("{t} is not a number"))
                } else {
                    t.parse::<f64>().map_err(|_| format!("{t} is not a number"))
                }
            };
            Value::Real(match special {
                Some(v) => v,
                None => number(text)?,
            })
        }
        Class::Text { .. } => Value::Text(string()?),
        Class::Bool => Value::Bool(serde_json::from_str(text).map_err(|_| format!("{text} is not true or false"))?),
        Class::Timestamp | Class::TimestampTz => {
            let s = string()?;
            let t = chrono::NaiveDateTime::parse_from_str(s.strip_suffix('Z').unwrap_or(&s), TIMESTAMP)
                .map_err(|_| format!("{s:?} is not a timestamp like 2025-01-02T03:04:05.123456"))?;
            Value::Timestamp(value::timestamp_micros(t)?)
        }
        Class::Date => {
            let s = string()?;
            let d = chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                .map_err(|_| format!("{s:?} is not a date like 2025-01-02"))?;
            Value::Date(value::date_days(d)?)
        }
        Class::Time => {
            let s = string()?;
            let t = chrono::NaiveTime::parse_from_str(&s, "%H:%M:%S%.f")
                .map_err(|_| format!("{s:?} is not a time like 03:04:05.123456"))?;
            Value::Time(value::time_micros(t)?)
        }
        Class::Bytes => Value::Bytes(hex(&string()?)?),
        Class::Vector { element, dims } => Value::Vector(crate::transfer::vector::parse_json(element, text, dims)?),
    })
}

fn hex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err("hexadecimal bytes of odd length".into());
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16).filter(|_| !c.is_ascii_uppercase());
            match (digit(pair[0]), digit(pair[1])) {
                #[allow(clippy::cast_possible_truncation)] // two hex digits
                (Some(a), Some(b)) => Ok((a * 16 + b) as u8),
                _ => Err(format!("{s:?} is not lowercase hexadecimal bytes")),
            }
        })
        .collect()
}

/// Reads JSON lines in the format of the [module](self) docs from `input` into `conn`; `on_batch` hears
/// the lines read so far after each batch.
///
/// # Errors
///
/// [`JsonlError::Line`] for a line that is not in the format (always: `skip_invalid` only skips rows
/// whose values the target cannot hold), [`JsonlError::Conflict`], or, in [`JsonlError::Database`], a
/// target that lacks a table or column or cannot hold a type ([`CopyError::Schema`], before anything is
/// written), invalid rows, a failing query.
pub fn import(
    conn: &mut DatabaseConnection,
    input: &mut dyn BufRead,
    options: &CopyOptions,
    on_batch: &mut dyn FnMut(u64),
) -> Result<JsonlReport, JsonlError> {
    dispatch!(conn, c => import_into(c, input, options, on_batch))
}

/// A line's text, read with [`MAX_LINE_BYTES`] as the limit; `None` at the end.
fn read_line(input: &mut dyn BufRead, buffer: &mut Vec<u8>, number: u64) -> Result<Option<()>, JsonlError> {
    buffer.clear();
    let limit = u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX) + 1;
    let n = input.take(limit).read_until(b'\n', buffer)?;
    if n == 0 {
        return Ok(None);
    }
    if buffer.len() > MAX_LINE_BYTES {
        return Err(JsonlError::Line {
            line: number,
            reason: format!("longer than {MAX_LINE_BYTES} bytes, the most a line may hold"),
        });
    }
    Ok(Some(()))
}

/// The first line: the format, its version, and whether the crate's own schema is in the file.
struct Meta {
    crate_schema: bool,
}

fn parse_meta(text: &str) -> Result<Meta, String> {
    let wrong = || format!("not the first line of {FORMAT} (export writes it: {{\"format\":\"{FORMAT}\",...}})");
    let v: serde_json::Value = serde_json::from_str(text).map_err(|_| wrong())?;
    let (Some(format), Some(version)) = (v["format"].as_str(), v["version"].as_u64()) else { return Err(wrong()) };
    if format != FORMAT || version != u64::from(VERSION) {
        return Err(format!("format {format} version {version}: this build reads {FORMAT} version {VERSION}"));
    }
    Ok(Meta { crate_schema: v["crate_schema"].as_bool().unwrap_or(false) })
}

/// A table's header line.
struct Header {
    table: String,
    key: Vec<String>,
    columns: Vec<(String, String)>,
}

fn parse_header(text: &str) -> Result<Header, String> {
    let wrong = |what: &str| format!("not a table header ({{\"table\":...,\"key\":[...],\"columns\":[...]}}): {what}");
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| wrong(&e.to_string()))?;
    let table = v["table"].as_str().ok_or_else(|| wrong("no table"))?.to_owned();
    let names = |v: &serde_json::Value| -> Option<Vec<String>> {
        v.as_array()?.iter().map(|n| n.as_str().map(str::to_owned)).collect()
    };
    let key = names(&v["key"]).ok_or_else(|| wrong("no key"))?;
    let columns = v["columns"]
        .as_array()
        .and_then(|cs| {
            cs.iter().map(|c| Some((c["name"].as_str()?.to_owned(), c["type"].as_str()?.to_owned()))).collect()
        })
        .ok_or_else(|| wrong("no columns of name and type"))?;
    Ok(Header { table, key, columns })
}

/// Whether a line (after the format line) is a row: a JSON object with a `row` member (a header has
/// `columns`; a column named `row` is inside them).
fn is_row_line(text: &str) -> bool {
    serde_json::from_str::<HashMap<String, &RawValue>>(text).is_ok_and(|o| o.contains_key("row"))
}

/// A row line: its table and its values, borrowed from the line.
fn parse_row(text: &str) -> Result<(String, HashMap<String, &RawValue>), String> {
    let wrong = |e: serde_json::Error| format!("not a row line ({{\"table\":...,\"row\":{{...}}}}): {e}");
    let outer: HashMap<String, &RawValue> = serde_json::from_str(text).map_err(wrong)?;
    let table = outer.get("table").map(|t| serde_json::from_str::<String>(t.get())).transpose().map_err(wrong)?;
    let row = outer
        .get("row")
        .map(|r| serde_json::from_str::<HashMap<String, &RawValue>>(r.get()))
        .transpose()
        .map_err(wrong)?;
    match (table, row) {
        (Some(table), Some(row)) => Ok((table, row)),
        _ => Err("not a row line: it needs \"table\" and \"row\"".into()),
    }
}

fn import_into<T: Store>(
    store: &mut T,
    input: &mut dyn BufRead,
    options: &CopyOptions,
    on_batch: &mut dyn FnMut(u64),
) -> Result<JsonlReport, JsonlError> {
    let mut buffer = Vec::new();
    let mut number = 0u64;
    // The format line, then every header, before any row.
    let mut meta = None;
    let mut headers = Vec::new();
    let mut first_row = None;
    while read_line(input, &mut buffer, number + 1)?.is_some() {
        number += 1;
        let text = std::str::from_utf8(&buffer).map_err(|_| line_error(number, "not UTF-8".into()))?.trim();
        if text.is_empty() {
            continue;
        }
        if meta.is_none() {
            meta = Some(parse_meta(text).map_err(|reason| line_error(number, reason))?);
            continue;
        }
        if is_row_line(text) {
            first_row = Some(text.to_owned());
            break;
        }
        headers.push(parse_header(text).map_err(|reason| line_error(number, reason))?);
    }
    let Some(meta) = meta else { return Ok(JsonlReport::default()) };
    let file = header_catalog(&headers).map_err(|reason| line_error(number, reason))?;
    let mut report =
        JsonlReport { migrations_applied: migrate(store, meta.crate_schema, options)?, ..JsonlReport::default() };
    let target = store.catalog().map_err(|e| catalog_error("target", e))?;
    let plans = table::plan(&file, Some(&target), &options.tables).map_err(CopyError::Schema)?;
    report.tables = plans.iter().map(|p| TableSums { table: p.name.clone(), ..TableSums::default() }).collect();
    store.begin_load().map_err(query("preparing the target".into()))?;
    let mut pending: Option<(usize, Vec<Vec<Value>>)> = None;
    // Without `skip_invalid`: the invalid rows of the batch being read. The batch is read to its end so that
    // every one of them is named (as `copy` names them), then nothing of it is written.
    let mut invalid = Vec::new();
    let refuse = |invalid: &mut Vec<_>| -> Result<(), JsonlError> {
        if invalid.is_empty() {
            Ok(())
        } else {
            Err(CopyError::InvalidRows(std::mem::take(invalid)).into())
        }
    };
    let mut text = first_row;
    loop {
        let Some(line) = text.take() else {
            // The next line, if any.
            match read_line(input, &mut buffer, number + 1)? {
                None => break,
                Some(()) => {
                    number += 1;
                    let t = std::str::from_utf8(&buffer).map_err(|_| line_error(number, "not UTF-8".into()))?.trim();
                    if !t.is_empty() {
                        text = Some(t.to_owned());
                    }
                    continue;
                }
            }
        };
        let (table, row) = parse_row(&line).map_err(|reason| line_error(number, reason))?;
        let Some(at) = plans.iter().position(|p| p.name == table) else {
            if file.table(&table).is_some() {
                continue; // left out by `options.tables`
            }
            return Err(line_error(number, format!("table {table} has no header line")));
        };
        let plan = &plans[at];
        let cells = row_cells(plan, &row).map_err(|reason| line_error(number, reason))?;
        let key = key_of(&cells, plan).map_err(|e| line_error(number, e.to_string()))?;
        if pending.as_ref().is_some_and(|(t, _)| *t != at) {
            refuse(&mut invalid)?;
            flush(store, &plans, &mut pending, &mut report, options)?;
            on_batch(number);
        }
        let rows = &mut pending.get_or_insert_with(|| (at, Vec::new())).1;
        match check(plan, &key, cells) {
            // Counted and checksummed once written: a row the target refuses is not imported.
            Ok(values) => rows.push(values),
            Err(bad) if options.skip_invalid => report.skip(vec![bad]),
            Err(bad) => invalid.push(bad),
        }
        if rows.len() + invalid.len() >= options.batch_size {
            refuse(&mut invalid)?;
            flush(store, &plans, &mut pending, &mut report, options)?;
            on_batch(number);
        }
    }
    refuse(&mut invalid)?;
    flush(store, &plans, &mut pending, &mut report, options)?;
    on_batch(number);
    report.indexes = store.after_load(&plans, &target.indexes).map_err(CopyError::from)?;
    Ok(report)
}

fn line_error(line: u64, reason: String) -> JsonlError {
    JsonlError::Line { line, reason }
}

/// The file's tables as a catalog: each header's columns with their neutral types.
fn header_catalog(headers: &[Header]) -> Result<Catalog, String> {
    let mut tables = Vec::with_capacity(headers.len());
    for h in headers {
        let columns = h
            .columns
            .iter()
            .map(|(name, ty)| {
                Class::parse(ty)
                    .map(|class| ColumnSpec {
                        name: name.clone(),
                        ty: ColumnType { class: Some(class), name: ty.clone() },
                        not_null: false,
                        has_default: false,
                        generated: false,
                        identity_always: false,
                    })
                    .ok_or_else(|| format!("{}.{name}: unknown type {ty:?}", h.table))
            })
            .collect::<Result<Vec<_>, _>>()?;
        tables.push(TableSpec {
            name: h.table.clone(),
            columns,
            primary_key: h.key.clone(),
            foreign_keys: Vec::new(),
            ids: IdGenerator::None,
        });
    }
    Ok(Catalog { backend: None, tables, indexes: Vec::new(), uses_crate_schema: false })
}

/// A row's values in the plan's column order, each read as its header type says.
fn row_cells(plan: &TablePlan, row: &HashMap<String, &RawValue>) -> Result<crate::transfer::Cells, String> {
    if let Some(extra) = row.keys().find(|k| !plan.columns.iter().any(|c| &c.name == *k)) {
        return Err(format!("{} has no column {extra} in its header", plan.name));
    }
    plan.columns
        .iter()
        .map(|c| {
            let raw = row.get(&c.name).ok_or_else(|| format!("the row has no value for {}", c.name))?;
            Ok(parse_value(raw, c.source))
        })
        .collect()
}

/// Writes the pending batch: reads the target's rows with its keys first (one that differs is a
/// conflict, and nothing is written), inserts, reads the batch back and compares it, and moves the id
/// generator past it.
fn flush<T: Store>(
    store: &mut T,
    plans: &[TablePlan],
    pending: &mut Option<(usize, Vec<Vec<Value>>)>,
    report: &mut JsonlReport,
    options: &CopyOptions,
) -> Result<(), JsonlError> {
    let Some((at, rows)) = pending.take().filter(|(_, rows)| !rows.is_empty()) else { return Ok(()) };
    let plan = &plans[at];
    let keyed: Vec<(Key, u64)> = rows
        .iter()
        .map(|r| key_of_row(plan, r).map(|k| (k, hash_row(r))))
        .collect::<Result<_, _>>()
        .map_err(query(format!("importing {}", plan.name)))?;
    let before = held(store, plan, &keyed)?;
    let conflicts: Vec<Key> =
        keyed.iter().filter(|(k, h)| before.get(k).is_some_and(|held| held != h)).map(|(k, _)| k.clone()).collect();
    if !conflicts.is_empty() {
        return Err(JsonlError::Conflict {
            table: plan.name.clone(),
            key_column: plan.key_label.clone(),
            keys: conflicts,
        });
    }
    let (inserted, refused) = write_rows(store, plan, &rows, options.skip_invalid)?;
    report.tables[at].inserted += inserted as u64;
    let refused_keys: HashSet<Key> = refused.iter().map(|r| r.key.clone()).collect();
    report.skip(refused);
    let back = held(store, plan, &keyed)?;
    // The rows written: each must read back as it was sent, and is counted as imported.
    let mut differing = Vec::new();
    for (key, hash) in keyed.iter().filter(|(k, _)| !refused_keys.contains(k)) {
        if back.get(key) != Some(hash) {
            differing.push(key.clone());
        }
        report.tables[at].rows.add(*hash);
    }
    if !differing.is_empty() {
        return Err(JsonlError::Verification { table: plan.name.clone(), keys: differing });
    }
    if let Some(max) = keyed.iter().filter_map(|(k, _)| k.as_int()).max() {
        store.reserve_ids(plan, max).map_err(query(format!("reserving ids of {}", plan.name)))?;
    }
    Ok(())
}

/// The target's rows with these keys: key -> row hash (a row it cannot read hashes to nothing valid).
fn held<T: Store>(store: &mut T, plan: &TablePlan, keyed: &[(Key, u64)]) -> Result<HashMap<Key, u64>, JsonlError> {
    let mut out = HashMap::with_capacity(keyed.len());
    for chunk in keyed.chunks(LOOKUP_CHUNK) {
        let keys: Vec<Key> = chunk.iter().map(|(k, _)| k.clone()).collect();
        for cells in store.lookup(plan, &keys).map_err(query(format!("reading {} on the target", plan.name)))? {
            let key = key_of(&cells, plan).map_err(query(format!("reading {} on the target", plan.name)))?;
            let values: Result<Vec<Value>, String> = cells.into_iter().collect();
            out.insert(key.clone(), values.map_or_else(|_| crate::transfer::unreadable_hash(&key), |v| hash_row(&v)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Element;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn round_trip(value: Value, class: Class) -> Value {
        let mut out = Vec::new();
        write_value(&mut out, &value, class).unwrap();
        parse_value(&raw(std::str::from_utf8(&out).unwrap()), class).unwrap()
    }

    #[test]
    fn every_kind_of_value_reads_back_bit_exact() {
        let blob: Vec<u8> = [0.0f32, -0.0, f32::MAX, f32::MIN_POSITIVE, f32::from_bits(1), 0.1]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let cases = [
            (Value::Int(i64::MIN), Class::Integer { bits: 64 }),
            (Value::Real(-0.0), Class::Real { bits: 64, sqlite: false }),
            (Value::Real(1e300), Class::Real { bits: 64, sqlite: false }),
            (Value::Real(f64::from(0.1f32)), Class::Real { bits: 32, sqlite: false }),
            (Value::Real(f64::NEG_INFINITY), Class::Real { bits: 64, sqlite: false }),
            (Value::Text("quote \" é \u{1F600} \n \0".into()), Class::Text { max_chars: None, nul: true }),
            (Value::Bool(false), Class::Bool),
            (Value::Timestamp(-1), Class::Timestamp),
            (Value::Timestamp(1_700_000_000_000_001), Class::TimestampTz),
            (Value::Date(-719_162), Class::Date),
            (Value::Time(1), Class::Time),
            (Value::Bytes(vec![0, 1, 0xab, 0xff]), Class::Bytes),
            (Value::Vector(blob), Class::Vector { element: Element::Vector, dims: Some(6) }),
            (Value::Null, Class::Bool),
        ];
        for (value, class) in cases {
            assert_eq!(round_trip(value.clone(), class), value, "{class:?}");
        }
        let nan = round_trip(Value::Real(f64::NAN), Class::Real { bits: 64, sqlite: false });
        assert!(matches!(nan, Value::Real(v) if v.is_nan()));
    }

    #[test]
    fn values_that_do_not_fit_their_type_say_so() {
        let int = Class::Integer { bits: 64 };
        assert_eq!(parse_value(&raw("1.5"), int).unwrap_err(), "1.5 is not an integer");
        assert!(parse_value(&raw("\"00FF\""), Class::Bytes).unwrap_err().contains("lowercase hexadecimal"));
        assert!(parse_value(&raw("\"yesterday\""), Class::Timestamp).unwrap_err().contains("not a timestamp"));
        assert!(parse_value(&raw("\"2025-01-01T00:00:00.123456789\""), Class::Timestamp)
            .unwrap_err()
            .contains("nanoseconds"));
        assert!(parse_value(&raw("[1,2]"), Class::Vector { element: Element::Vector, dims: Some(3) }).is_err());
        assert!(parse_value(&raw("\"inf\""), Class::Real { bits: 64, sqlite: false }).is_err());
    }

    #[test]
    fn a_header_with_a_column_named_row_is_not_a_row() {
        assert!(!is_row_line(r#"{"table":"t","key":["id"],"columns":[{"name":"row","type":"int64"}]}"#));
        assert!(is_row_line(r#"{"table":"t","row":{"id":1}}"#));
        assert!(!is_row_line("not json"));
    }

    #[test]
    fn a_line_longer_than_the_limit_is_refused_after_reading_that_much() {
        let mut endless = io::BufReader::new(io::repeat(b'x'));
        let mut buffer = Vec::new();
        let err = read_line(&mut endless, &mut buffer, 1).unwrap_err();
        assert!(err.to_string().starts_with("line 1: longer than 67108864 bytes"), "{err}");
        assert_eq!(buffer.len(), MAX_LINE_BYTES + 1);
    }
}
