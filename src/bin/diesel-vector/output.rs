//! Printing: reports as text or JSON on standard output, progress on standard error (one line redrawn
//! in place on a terminal, a plain line per batch otherwise).
//!
//! Text from a database (fragment contents, versions, names inside findings and errors) is printed
//! through [`escape`]: control characters become visible escapes (`\r`, `\x1b`, `\u{202e}`), so stored
//! text can neither forge or hide lines nor drive the terminal. JSON is escaped by serde_json for
//! U+0000..U+001F; [`json_safe`] escapes the rest of those characters too.

use std::borrow::Cow;
use std::io::{self, IsTerminal, Write};
use std::time::Instant;

use diesel_vector::copy::{CopyEvent, CopyReport, IndexReport, TargetIndex};
use diesel_vector::doctor::{Extension, IndexState, Level, Reindexed, Report};
use diesel_vector::jsonl::JsonlReport;
use diesel_vector::migrations::{MigrationError, Outcome};
use diesel_vector::models::Fragment;
use diesel_vector::search::Neighbor;
use diesel_vector::sqlite::IndexError;
use serde_json::{json, Value};

/// Characters that must not reach a terminal as they are: C0 and C1 controls and DEL (`char::is_control`),
/// and the invisible ones that reorder or separate text (bidirectional overrides and isolates, line and
/// paragraph separators).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every character of [`needs_escape`] written as a visible escape: `\n`, `\r`, `\t`,
/// `\x1b` for the other controls below U+0100, `\u{202e}` above.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    escape_with(text, false)
}

/// [`escape`], keeping line breaks: for messages of several lines.
pub(crate) fn escape_keeping_lines(text: &str) -> Cow<'_, str> {
    escape_with(text, true)
}

fn escape_with(text: &str, keep_lines: bool) -> Cow<'_, str> {
    if !text.chars().any(|c| needs_escape(c) && !(keep_lines && c == '\n')) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' if keep_lines => out.push('\n'),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && u32::from(c) < 0x100 => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// JSON text with the characters of [`needs_escape`] that serde_json leaves as they are (DEL, C1
/// controls, bidirectional and separator characters) written as `\uXXXX`: the same JSON value, safe on a
/// terminal. They can only occur inside strings, where the escape means the same character.
pub(crate) fn json_safe(json: String) -> String {
    if !json.chars().any(needs_escape) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// An error's message for the command line: what the library says, with the calls it names replaced by
/// the commands that make them.
pub(crate) fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = Some(error);
    while let Some(e) = cause {
        let replacement = if let Some(MigrationError::NoDatabase { path }) = e.downcast_ref::<MigrationError>() {
            Some(format!(
                "no database at {0}: check the path, or create it with `diesel-vector --database-url {0} migration run`",
                path.display()
            ))
        } else {
            match e.downcast_ref::<IndexError>() {
                Some(IndexError::NotMigrated { index, .. }) if index == diesel_vector::sqlite::INDEX_TABLE => Some(
                    "the database has no diesel-vector tables yet: run `diesel-vector migration run` first".to_owned(),
                ),
                Some(IndexError::NotMigrated { index, table }) => Some(format!(
                    "the vector index {index} on {table} is not set up in this database: apply the migration that \
                     creates it (`diesel-vector migration --migration-dir DIR run`, or `diesel migration run`)"
                )),
                Some(IndexError::ExtensionMissing) => Some(
                    "this build of diesel-vector has no sqlite-vec, so there is no vec0 index to build: searches \
                     scan every row exactly (build with the `sqlite-vec` feature for the index)"
                        .to_owned(),
                ),
                _ => None,
            }
        };
        if let Some(replacement) = replacement {
            text = text.replace(&e.to_string(), &replacement);
        }
        cause = e.source();
    }
    // sqlite-vec replaces SQLite's error with its own when a write of its index fails.
    if text.contains("sqlite-vec error: Could not insert") {
        text.push_str(" (sqlite-vec gives no cause: usually the disk is full)");
    }
    text
}

/// Progress on standard error.
pub(crate) struct Progress {
    command: &'static str,
    tty: bool,
    /// Whether a redrawn line is on screen (so the next message starts on a new line).
    open_line: bool,
    started: Instant,
}

impl Progress {
    pub(crate) fn new(command: &'static str) -> Self {
        Self { command, tty: io::stderr().is_terminal(), open_line: false, started: Instant::now() }
    }

    fn line(&mut self, text: &str) {
        let mut err = io::stderr().lock();
        if self.open_line {
            let _ = writeln!(err);
            self.open_line = false;
        }
        let _ = writeln!(err, "{}: {text}", self.command);
    }

    fn redraw(&mut self, text: &str) {
        if self.tty {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}: {text}", self.command);
            let _ = err.flush();
            self.open_line = true;
        } else {
            self.line(text);
        }
    }

    pub(crate) fn copy_event(&mut self, event: &CopyEvent<'_>) {
        match event {
            CopyEvent::Migrated { applied } if *applied > 0 => {
                self.line(&format!("target: applied {applied} migration(s)"))
            }
            CopyEvent::Table { table, source_rows, resume_after, to_copy } => {
                self.started = Instant::now();
                match resume_after {
                    Some(key) => self.line(&format!(
                        "{table}: {source_rows} rows on the source; resuming after {key}, {to_copy} to go"
                    )),
                    None => self.line(&format!("{table}: {source_rows} rows on the source")),
                }
            }
            CopyEvent::Batch { table, done, to_copy, last_key } => {
                let rate = *done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
                let percent = if *to_copy == 0 { 100.0 } else { *done as f64 * 100.0 / *to_copy as f64 };
                self.redraw(&format!(
                    "{table}: {done}/{to_copy} rows ({percent:.1}%), last key {last_key}, {rate:.0} rows/s"
                ));
            }
            CopyEvent::Skipped { rows } => {
                for row in *rows {
                    self.line(&format!("skipped invalid row {}", escape(&row.to_string())));
                }
            }
            CopyEvent::Verifying { table } => self.line(&format!("{table}: verifying")),
            CopyEvent::UpdatingIndex => self.line("target: updating the vector indexes"),
            _ => {}
        }
    }

    pub(crate) fn count(&mut self, what: &str, n: u64) {
        self.redraw(&format!("{what}: {n}"));
    }

    pub(crate) fn finish(&mut self) {
        if self.open_line {
            let _ = writeln!(io::stderr());
            self.open_line = false;
        }
    }
}

pub(crate) fn outcome(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Adopted => "Adopted (its objects already existed)",
        _ => "Ran",
    }
}

pub(crate) fn copy_report(report: &CopyReport) {
    let width = report.tables.iter().map(|t| t.table.chars().count()).max().unwrap_or(0).max(20);
    for t in &report.tables {
        let resumed =
            t.resumed_after.as_ref().map(|k| format!(", resumed after {} {k}", t.key_column)).unwrap_or_default();
        println!(
            "{:<width$} source {:>9} rows  checksum {}  target {:>9} rows  checksum {}  {}  (inserted {}{resumed})",
            t.table,
            t.source.rows,
            t.source.checksum,
            t.target.rows,
            t.target.checksum,
            if t.is_verified() { "verified" } else { "DIFFERENT" },
            t.inserted,
        );
        if !t.is_verified() {
            let keys: Vec<String> = t.differing_keys.iter().map(ToString::to_string).collect();
            println!("{:<width$} {} {}(s) differ, first: [{}]", "", t.differing, t.key_column, keys.join(", "));
        }
    }
    skipped(report.skipped_count, &report.skipped);
    indexes(&report.indexes, &mut |line| println!("{line}"));
}

fn indexes(indexes: &[IndexReport], print: &mut dyn FnMut(String)) {
    for i in indexes {
        print(format!("index {} on {}.{}: {}", i.name, i.table, i.column, target_index(&i.state)));
    }
}

fn skipped(count: u64, rows: &[diesel_vector::copy::InvalidRow]) {
    if count == 0 {
        return;
    }
    println!("skipped {count} invalid row(s):");
    for row in rows {
        println!("  {}", escape(&row.to_string()));
    }
    if count > rows.len() as u64 {
        println!("  ... and {} more", count - rows.len() as u64);
    }
}

fn target_index(index: &TargetIndex) -> String {
    match index {
        TargetIndex::Vec0Synced { rebuilt: true, applied } => format!("vec0 rebuilt, {applied} rows"),
        TargetIndex::Vec0Synced { applied, .. } => format!("vec0 up to date ({applied} changes applied)"),
        TargetIndex::Vec0Pending => "vec0 not updated: this build has no sqlite-vec".into(),
        TargetIndex::Synced { rebuilt: true, .. } => "up to date (rebuilt from the table)".into(),
        TargetIndex::Synced { applied, .. } => format!("up to date ({applied} changes applied)"),
        TargetIndex::Ivfflat { lists, rows, needs_rebuild: true } => format!(
            "ivfflat with {lists} lists for {rows} rows: built with little data, searches recall poorly until \
             `diesel-vector reindex` on the target"
        ),
        TargetIndex::Ivfflat { lists, rows, .. } => format!("ivfflat with {lists} lists for {rows} rows"),
        TargetIndex::Other { method } => escape(method).into_owned(),
        TargetIndex::Missing => "none (searches scan every row; `diesel-vector reindex` creates one)".into(),
        _ => "unknown".into(),
    }
}

pub(crate) fn jsonl_report(verb: &str, report: &JsonlReport) {
    for t in &report.tables {
        let inserted = if verb == "imported" { format!(", {} new", t.inserted) } else { String::new() };
        eprintln!("{verb} {}: {} rows (checksum {}){inserted}", t.table, t.rows.rows, t.rows.checksum);
    }
    if report.skipped_count > 0 {
        eprintln!("skipped {} invalid row(s):", report.skipped_count);
        for row in &report.skipped {
            eprintln!("  {}", escape(&row.to_string()));
        }
    }
    indexes(&report.indexes, &mut |line| eprintln!("{line}"));
}

pub(crate) fn reindexed(r: Reindexed) -> String {
    match r {
        Reindexed::Vec0 { rows } => format!("rebuilt the vec0 index: {rows} rows"),
        Reindexed::Ivfflat { lists } => format!("rebuilt fragment_embeddings_cosine_idx: ivfflat, {lists} lists"),
        Reindexed::Hnsw => "rebuilt fragment_embeddings_cosine_idx: hnsw (vector_cosine_ops)".into(),
        _ => "rebuilt the index".into(),
    }
}

fn extension_text(e: &Extension) -> (&'static str, String) {
    match e {
        Extension::Pgvector { available, installed, schema, on_search_path } => {
            let text = match (installed, available) {
                (Some(i), a) => format!(
                    "{i} in schema {}{} (server has {})",
                    schema.as_deref().unwrap_or("?"),
                    if *on_search_path { "" } else { ", NOT on the search_path" },
                    a.as_deref().unwrap_or("none")
                ),
                (None, Some(a)) => format!("not created in this database (server has {a})"),
                (None, None) => "not installed on the server".into(),
            };
            ("pgvector", text)
        }
        Extension::SqliteVec { version } => {
            ("sqlite-vec", version.clone().unwrap_or_else(|| "absent (searches scan exactly)".into()))
        }
        _ => ("extension", "unknown".into()),
    }
}

fn index_text(index: &IndexState) -> String {
    match index {
        IndexState::Vec0(s) => {
            let state = if s.sqlite_vec.is_none() {
                "not maintained without sqlite-vec".to_owned()
            } else if s.is_up_to_date() {
                "up to date".to_owned()
            } else if !s.table_exists {
                "not built".to_owned()
            } else if s.needs_rebuild {
                "marked for rebuild".to_owned()
            } else {
                format!("{} pending change(s)", s.pending_changes)
            };
            let indexed = s.indexed_rows.map(|n| format!(", {n} indexed")).unwrap_or_default();
            format!("vec0 {}: {state}{indexed}, {} embedded rows", diesel_vector::sqlite::INDEX_TABLE, s.embedded_rows)
        }
        IndexState::Ivfflat(s) => format!(
            "ivfflat {}: {} lists for {} rows (recommended {})",
            diesel_vector::pg::IVFFLAT_INDEX,
            s.lists,
            s.rows,
            s.recommended_lists()
        ),
        IndexState::Other { method } => format!("{} {}", escape(method), diesel_vector::pg::IVFFLAT_INDEX),
        IndexState::Missing => "none".into(),
        _ => "unknown".into(),
    }
}

pub(crate) fn doctor_text(r: &Report) {
    let backend = match r.backend {
        diesel_vector::database::BackendKind::Postgres => "postgresql",
        _ => "sqlite",
    };
    println!("{:<13}{backend}: {}", "backend", escape(&r.server_version));
    let (name, text) = extension_text(&r.extension);
    println!("{name:<13}{}", escape(&text));
    let applied = r.migrations.iter().filter(|m| m.applied).count();
    println!("{:<13}{applied} applied, {} pending", "migrations", r.migrations.len() - applied);
    for m in &r.migrations {
        println!("{:<13}[{}] {}", "", if m.applied { "X" } else { " " }, escape(&m.name));
    }
    if let Some(fk) = r.foreign_keys {
        println!(
            "{:<13}{}, {}",
            "foreign key",
            if fk.declared { "declared" } else { "NOT declared" },
            if fk.enforced { "enforced" } else { "NOT enforced" }
        );
    }
    if let Some(rows) = r.rows {
        println!(
            "{:<13}{} fragments, {} embeddings ({} with a vector, {} orphans)",
            "rows", rows.fragments, rows.embeddings, rows.with_vector, rows.orphans
        );
    }
    if let Some(index) = &r.index {
        println!("{:<13}{}", "index", index_text(index));
    }
    println!("{:<13}{}", "verdict", r.verdict());
    for f in &r.findings {
        println!("  {} {}", if f.level == Level::Action { "ACTION: " } else { "warning:" }, escape(&f.message));
    }
}

pub(crate) fn doctor_json(r: &Report) -> String {
    let extension = match &r.extension {
        Extension::Pgvector { available, installed, schema, on_search_path } => json!({
            "name": "pgvector", "available": available, "installed": installed, "schema": schema,
            "on_search_path": on_search_path,
        }),
        Extension::SqliteVec { version } => json!({ "name": "sqlite-vec", "installed": version }),
        _ => Value::Null,
    };
    let index = r.index.as_ref().map(|index| match index {
        IndexState::Vec0(s) => json!({
            "method": "vec0", "sqlite_vec": s.sqlite_vec, "exists": s.table_exists, "up_to_date": s.is_up_to_date(),
            "needs_rebuild": s.needs_rebuild, "pending_changes": s.pending_changes, "indexed_rows": s.indexed_rows,
            "embedded_rows": s.embedded_rows,
        }),
        IndexState::Ivfflat(s) => json!({
            "method": "ivfflat", "lists": s.lists, "rows": s.rows, "recommended_lists": s.recommended_lists(),
            "needs_rebuild": s.rows > 0 && s.needs_rebuild(),
        }),
        IndexState::Other { method } => json!({ "method": method }),
        IndexState::Missing => json!({ "method": null }),
        _ => Value::Null,
    });
    let value = json!({
        "backend": match r.backend { diesel_vector::database::BackendKind::Postgres => "postgresql", _ => "sqlite" },
        "server_version": r.server_version,
        "extension": extension,
        "migrations": r.migrations.iter().map(|m| json!({ "version": m.version, "name": m.name, "applied": m.applied })).collect::<Vec<_>>(),
        "foreign_keys": r.foreign_keys.map(|fk| json!({ "declared": fk.declared, "enforced": fk.enforced })),
        "rows": r.rows.map(|n| json!({
            "fragments": n.fragments, "embeddings": n.embeddings, "with_vector": n.with_vector, "orphans": n.orphans,
        })),
        "index": index,
        "verdict": r.verdict(),
        "needs_action": r.needs_action(),
        "findings": r.findings.iter().map(|f| json!({
            "level": if f.level == Level::Action { "action" } else { "warning" }, "message": f.message,
        })).collect::<Vec<_>>(),
    });
    json_safe(value.to_string())
}

fn content(fragments: &[Fragment], id: i64) -> &str {
    fragments.iter().find(|f| f.id == id).map_or("", |f| f.content.as_str())
}

pub(crate) fn search_text(hits: &[Neighbor], fragments: &[Fragment], tty: bool) {
    println!("{:>4}  {:>10}  {:>10}  {:>10}  content", "rank", "distance", "id", "fragment");
    for (rank, h) in hits.iter().enumerate() {
        let text = escape(content(fragments, h.fragment_id)).into_owned();
        // On a terminal, one line per hit; piped, the whole text.
        let text = if tty && text.chars().count() > 80 {
            format!("{}...", text.chars().take(77).collect::<String>())
        } else {
            text
        };
        println!("{:>4}  {:>10.6}  {:>10}  {:>10}  {text}", rank + 1, h.distance, h.id, h.fragment_id);
    }
}

pub(crate) fn search_json(hits: &[Neighbor], fragments: &[Fragment]) -> String {
    json_safe(
        Value::Array(
            hits.iter()
                .enumerate()
                .map(|(rank, h)| {
                    json!({
                        "rank": rank + 1, "id": h.id, "fragment_id": h.fragment_id, "distance": h.distance,
                        "content": content(fragments, h.fragment_id),
                    })
                })
                .collect(),
        )
        .to_string(),
    )
}
