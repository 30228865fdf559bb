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

use diesel_vector::copy::{CopyEvent, CopyReport, IndexReport as CopyIndexReport, TargetIndex};
use diesel_vector::doctor::{
    Built, Extension, IndexReport, IndexState, Level, PgIndexInfo, Reindexed, Remedy, Report, Unregistered,
};
use diesel_vector::index::{shown, shown_column, Element, IndexSpec};
use diesel_vector::jsonl::JsonlReport;
use diesel_vector::migrations::{MigrationError, Outcome};
use diesel_vector::models::Fragment;
use diesel_vector::search::Hit;
use diesel_vector::search::Neighbor;
use diesel_vector::sqlite::IndexError;
use diesel_vector::sqlite::InvalidRows;
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
        } else if let Some(diesel_vector::search::SearchError::UnknownTable { table, .. }) =
            e.downcast_ref::<diesel_vector::search::SearchError>()
        {
            (table == "fragment_embeddings" || table == "fragments").then(|| {
                "the database has no diesel-vector tables yet: run `diesel-vector migration run` first".to_owned()
            })
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

pub(crate) fn copy_report(report: &CopyReport) -> io::Result<()> {
    let width = report.tables.iter().map(|t| shown(&t.table).chars().count()).max().unwrap_or(0).max(20);
    for t in &report.tables {
        let resumed =
            t.resumed_after.as_ref().map(|k| format!(", resumed after {} {k}", t.key_column)).unwrap_or_default();
        say!(
            "{:<width$} source {:>9} rows  checksum {}  target {:>9} rows  checksum {}  {}  (inserted {}{resumed})",
            shown(&t.table),
            t.source.rows,
            t.source.checksum,
            t.target.rows,
            t.target.checksum,
            if t.is_verified() { "verified" } else { "DIFFERENT" },
            t.inserted,
        )?;
        if !t.is_verified() {
            let keys: Vec<String> = t.differing_keys.iter().map(ToString::to_string).collect();
            say!("{:<width$} {} {}(s) differ, first: [{}]", "", t.differing, t.key_column, keys.join(", "))?;
        }
    }
    skipped(report.skipped_count, &report.skipped)?;
    indexes(&report.indexes, &mut |line| say!("{line}"))
}

fn indexes(indexes: &[CopyIndexReport], print: &mut dyn FnMut(String) -> io::Result<()>) -> io::Result<()> {
    for i in indexes {
        print(format!(
            "index {} on {}: {}",
            shown(&i.name),
            shown_column(&i.table, &i.column),
            target_index(&i.state)
        ))?;
    }
    Ok(())
}

fn skipped(count: u64, rows: &[diesel_vector::copy::InvalidRow]) -> io::Result<()> {
    if count == 0 {
        return Ok(());
    }
    say!("skipped {count} invalid row(s):")?;
    for row in rows {
        say!("  {}", escape(&row.to_string()))?;
    }
    if count > rows.len() as u64 {
        say!("  ... and {} more", count - rows.len() as u64)?;
    }
    Ok(())
}

fn target_index(index: &TargetIndex) -> String {
    match index {
        TargetIndex::Vec0Synced { rebuilt: true, applied } => format!("vec0 rebuilt, {applied} rows"),
        TargetIndex::Vec0Synced { applied, .. } => format!("vec0 up to date ({applied} changes applied)"),
        TargetIndex::Vec0Pending => "vec0 not updated: this build has no sqlite-vec".into(),
        TargetIndex::Synced { rebuilt: true, applied } => format!("codes rebuilt, {applied} rows"),
        TargetIndex::Synced { applied, .. } => format!("codes up to date ({applied} changes applied)"),
        TargetIndex::Ivfflat { lists, rows, needs_rebuild: true } => format!(
            "ivfflat with {lists} lists for {rows} rows: built with little data, searches recall poorly until \
             `diesel-vector reindex` on the target"
        ),
        TargetIndex::Ivfflat { lists, rows, .. } => format!("ivfflat with {lists} lists for {rows} rows"),
        TargetIndex::Other { method } => escape(method).into_owned(),
        TargetIndex::Missing => "missing (searches scan every row; `diesel-vector reindex` builds it)".into(),
        TargetIndex::Scan => "no structure kept (searches scan every row)".into(),
        _ => "unknown".into(),
    }
}

pub(crate) fn jsonl_report(verb: &str, report: &JsonlReport) -> io::Result<()> {
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
    indexes(&report.indexes, &mut |line| {
        eprintln!("{line}");
        Ok(())
    })
}

pub(crate) fn reindexed(r: &Reindexed) -> String {
    let what = format!("{} ({})", shown(&r.index), shown_column(&r.table, &r.column));
    match &r.built {
        Built::Vec0 { rows, left_out } => {
            format!("rebuilt {what}: vec0, {rows} rows{}", left_out_text(left_out, r.element))
        }
        Built::Codes { structures, rows, left_out } => {
            format!("rebuilt {what}: {}, {rows} rows{}", structures.name(), left_out_text(left_out, r.element))
        }
        Built::Queue { left_out } => {
            format!(
                "rebuilt {what}: queue cleared (no structure: searches scan exactly){}",
                left_out_text(left_out, r.element)
            )
        }
        #[cfg(feature = "pg")]
        Built::Pg(status) => {
            let method = status.method.as_deref().unwrap_or("none");
            let lists = status.lists.map(|l| format!(", {l} lists")).unwrap_or_default();
            format!("rebuilt {what}: {method} {}{lists} for {} rows", status.name, status.rows)
        }
        Built::NoPgIndex => format!("skipped {what}: it declares no PostgreSQL index (searches scan exactly)"),
        _ => format!("rebuilt {what}"),
    }
}

fn left_out_text(left_out: &InvalidRows, element: Element) -> String {
    if left_out.count == 0 {
        return String::new();
    }
    let ids: Vec<String> = left_out.ids.iter().map(i64::to_string).collect();
    let more = if left_out.count > left_out.ids.len() as i64 { ", ..." } else { "" };
    format!(
        "; left out {} row(s) whose value the index cannot hold (not a {element} of its dimensions with finite \
         elements; ids {}{more})",
        left_out.count,
        ids.join(", ")
    )
}

/// A name as one shell word: as it is when it needs no quoting, otherwise in single quotes.
pub(crate) fn shell_word(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "_-./:".contains(c)) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The command that carries out a remedy.
fn remedy_text(remedy: &Remedy) -> Option<String> {
    Some(match remedy {
        Remedy::Reindex { table } => format!("run `diesel-vector reindex --table {}`", shell_word(table)),
        Remedy::RunCrateMigrations => "run `diesel-vector migration run`".to_owned(),
        Remedy::RunAppMigrations { dir } => format!(
            "run `diesel-vector migration run --migration-dir {}` (or `diesel migration run`)",
            shell_word(&dir.display().to_string())
        ),
        Remedy::Register { table, column } => format!(
            "`diesel-vector generate vector-index --table {} --column {} --dims N` writes its migration",
            shell_word(table),
            shell_word(column)
        ),
        _ => return None,
    })
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

fn spec_text(spec: &IndexSpec, column_type: Option<&str>) -> String {
    let partitions: Vec<_> = spec.partition_by().map(shown).collect();
    let partitioned =
        if partitions.is_empty() { String::new() } else { format!(", partitioned by {}", partitions.join(", ")) };
    // SQLite declares every vector column BLOB: say which type the index reads in it.
    let column_type = match column_type {
        Some(ty) if ty.eq_ignore_ascii_case("BLOB") => format!("{} as {ty}", spec.element().pg_type(spec.dims())),
        Some(ty) => ty.to_owned(),
        None => "MISSING".to_owned(),
    };
    format!(
        "{}: {}, {column_type}, {}{partitioned}",
        shown_column(spec.table(), spec.column()),
        shown(spec.name()),
        spec.metric()
    )
}

fn state_text(index: &IndexReport) -> String {
    match &index.state {
        None if !index.missing_columns.is_empty() => {
            let missing: Vec<_> = index.missing_columns.iter().map(|c| shown(c)).collect();
            format!("the table lacks the index's column {}", missing.join(", "))
        }
        None => "the table or column does not exist".to_owned(),
        Some(IndexState::Sqlite { status, invalid }) => {
            let kept = index.spec.sqlite_index();
            let codes = index.spec.sqlite_keeps_codes();
            let rows = status.embedded_rows;
            let invalid = if invalid.count > 0 { format!(", {} invalid", invalid.count) } else { String::new() };
            let structure = match (kept.vec0, codes) {
                (true, true) => format!("codes and vec0 {}", index.spec.vec0_table()),
                (true, false) => format!("vec0 {}", index.spec.vec0_table()),
                (false, true) => "codes".to_owned(),
                // Nothing to keep current: the queue's state means nothing to a search.
                (false, false) => return format!("no structure (exact scans), {rows} rows{invalid}"),
            };
            let state = if status.is_up_to_date() {
                "up to date".to_owned()
            } else if kept.vec0 && !codes && status.sqlite_vec.is_none() {
                "not maintained without sqlite-vec".to_owned()
            } else if status.needs_rebuild {
                "marked for rebuild".to_owned()
            } else if codes && !status.codes_current {
                "codes not built or stale".to_owned()
            } else if kept.vec0 && status.sqlite_vec.is_some() && !status.vec0_table_exists {
                "not built".to_owned()
            } else {
                format!("{} pending change(s)", status.pending_changes)
            };
            let indexed = match (codes, status.codes_rows, status.vec0_rows) {
                (true, Some(n), _) => format!(", {n} indexed"),
                (_, _, Some(n)) => format!(", {n} indexed"),
                _ => String::new(),
            };
            let unranked = if codes && status.codes_rank_neighbours == Some(false) {
                " (the codes do not rank these vectors: searches scan every row)"
            } else {
                ""
            };
            format!("{structure}: {state}{indexed}, {rows} rows{invalid}{unranked}")
        }
        #[cfg(feature = "pg")]
        Some(IndexState::Pg { status, .. }) => match status.method.as_deref() {
            None if index.spec.pg_index_name().is_none() => format!("no PostgreSQL index, {} rows", status.rows),
            None => format!("{} {}: MISSING, {} rows", index.spec.pg_index(), status.name, status.rows),
            Some(method) => {
                let valid = if status.valid { "valid" } else { "NOT VALID" };
                match status.lists {
                    Some(lists) => format!(
                        "{method} {}: {valid}, {lists} lists for {} rows (recommended {})",
                        status.name,
                        status.rows,
                        status.recommended_lists()
                    ),
                    None => format!("{method} {}: {valid}, {} rows", status.name, status.rows),
                }
            }
        },
        Some(IndexState::NotSetUp) => "its queue and state are missing".to_owned(),
        Some(_) => "unknown".to_owned(),
    }
}

fn unregistered_text(u: &Unregistered) -> String {
    let index = |i: &PgIndexInfo| {
        let lists = i.lists.map(|l| format!(", {l} lists")).unwrap_or_default();
        format!("{} {} ({}{lists})", i.method, i.name, if i.valid { "valid" } else { "NOT VALID" })
    };
    match u {
        Unregistered::PgColumn { schema, table, column, column_type, rows_estimate, indexes } => {
            let indexes: Vec<String> = indexes.iter().map(index).collect();
            format!(
                "{}.{} {column_type}, about {rows_estimate} rows; {}",
                shown(schema),
                shown_column(table, column),
                if indexes.is_empty() { "no index".to_owned() } else { indexes.join(", ") }
            )
        }
        Unregistered::PgIndex { table, column, index: i, .. } => {
            format!("{}: {}", shown_column(table, column), index(i))
        }
        Unregistered::Vec0Table { name } => format!("vec0 table {name}"),
        _ => "unknown".to_owned(),
    }
}

pub(crate) fn doctor_text(r: &Report) -> io::Result<()> {
    let backend = match r.backend {
        diesel_vector::database::BackendKind::Postgres => "postgresql",
        _ => "sqlite",
    };
    say!("{:<13}{backend}: {}", "backend", escape(&r.server_version))?;
    let (name, text) = extension_text(&r.extension);
    say!("{name:<13}{}", escape(&text))?;
    let m = &r.migrations;
    let migrations = match (&m.pending, &m.directory) {
        _ if !m.recorded => "none has run (no Diesel bookkeeping)".to_owned(),
        (Some(pending), Some(dir)) => {
            format!("{} applied, {} pending in {}", m.applied.len(), pending.len(), dir.display())
        }
        _ => format!("{} applied (give --migration-dir to see pending ones)", m.applied.len()),
    };
    say!("{:<13}{migrations}", "migrations")?;
    for name in m.pending.iter().flatten() {
        say!("{:<13}[ ] {}", "", escape(name))?;
    }
    if r.indexes.is_empty() {
        say!("{:<13}none registered", "indexes")?;
    }
    for (i, index) in r.indexes.iter().enumerate() {
        let spec = spec_text(&index.spec, index.column_type.as_deref());
        say!("{:<13}{}", if i == 0 { "indexes" } else { "" }, escape(&spec))?;
        say!("{:<13}  {}", "", escape(&state_text(index)))?;
        #[cfg(feature = "pg")]
        if let Some(IndexState::Pg { partition_indexes, .. }) = &index.state {
            for p in partition_indexes {
                // The condition, as PostgreSQL prints the index.
                let condition = p.definition.rsplit_once(" WHERE ").map_or("?", |(_, c)| c);
                let valid = if p.valid { "valid" } else { "NOT VALID" };
                let line = format!("partition index {} {}: {condition}, {valid}", p.method, p.name);
                say!("{:<13}  {}", "", escape(&line))?;
            }
        }
    }
    for (i, u) in r.unregistered.iter().enumerate() {
        say!("{:<13}{}", if i == 0 { "unregistered" } else { "" }, escape(&unregistered_text(u)))?;
    }
    if let Some(f) = &r.fragments {
        let applied = f.migrations.iter().filter(|m| m.applied).count();
        say!("{:<13}diesel-vector's schema: {applied} applied, {} pending", "fragments", f.migrations.len() - applied)?;
        for m in &f.migrations {
            say!("{:<13}[{}] {}", "", if m.applied { "X" } else { " " }, escape(&m.name))?;
        }
        if let Some(fk) = f.foreign_keys {
            say!(
                "{:<13}{}, {}",
                "foreign key",
                if fk.declared { "declared" } else { "NOT declared" },
                if fk.enforced { "enforced" } else { "NOT enforced" }
            )?;
        }
        if let Some(rows) = f.rows {
            say!(
                "{:<13}{} fragments, {} embeddings ({} with a vector, {} orphans)",
                "rows",
                rows.fragments,
                rows.embeddings,
                rows.with_vector,
                rows.orphans
            )?;
        }
    }
    say!("{:<13}{}", "verdict", r.verdict())?;
    for f in &r.findings {
        let label = match f.level {
            Level::Action => "ACTION: ",
            Level::Warning => "warning:",
            _ => "info:   ",
        };
        let todo = f.remedy.as_ref().and_then(remedy_text).map(|t| format!("; {t}")).unwrap_or_default();
        say!("  {label} {}{}", escape(&f.message), escape(&todo))?;
    }
    Ok(())
}

fn index_json(index: &IndexReport) -> Value {
    let spec = &index.spec;
    let mut value = json!({
        "name": spec.name(), "table": spec.table(), "column": spec.column(), "id_column": spec.id_column(),
        "element": spec.element().name(), "dims": spec.dims(), "metric": spec.metric().name(),
        "partition_by": spec.partition_by().collect::<Vec<_>>(), "column_type": index.column_type,
        "rows": index.rows(), "postgresql": Value::Null, "sqlite": Value::Null,
    });
    match &index.state {
        #[cfg(feature = "pg")]
        Some(IndexState::Pg { status, definition, operator_class_matches, partition_indexes }) => {
            let partitions: Vec<Value> = partition_indexes
                .iter()
                .map(|p| json!({ "name": p.name, "method": p.method, "valid": p.valid, "definition": p.definition }))
                .collect();
            value["postgresql"] = json!({
                "name": status.name, "registered_method": spec.pg_index().name(), "method": status.method,
                "valid": status.valid, "lists": status.lists, "recommended_lists": status.recommended_lists(),
                "needs_rebuild": status.rows > 0 && status.needs_rebuild(), "definition": definition,
                "operator_class_matches": operator_class_matches, "partition_indexes": partitions,
            });
        }
        Some(IndexState::Sqlite { status, invalid }) => {
            value["sqlite"] = json!({
                "structures": spec.sqlite_index().name(), "keeps_codes": spec.sqlite_keeps_codes(),
                "sqlite_vec": status.sqlite_vec,
                "vec0_exists": status.vec0_table_exists, "up_to_date": status.is_up_to_date(),
                "needs_rebuild": status.needs_rebuild, "pending_changes": status.pending_changes,
                "indexed_rows": status.vec0_rows, "codes_rows": status.codes_rows, "codes_current": status.codes_current,
                "codes_rank_neighbours": status.codes_rank_neighbours,
                "embedded_rows": status.embedded_rows,
                "generation": status.generation,
                "invalid_rows": { "count": invalid.count, "ids": invalid.ids },
            });
        }
        _ => {}
    }
    value
}

fn unregistered_json(u: &Unregistered) -> Value {
    let index = |i: &PgIndexInfo| {
        json!({
            "name": i.name, "method": i.method, "valid": i.valid, "lists": i.lists, "rows": i.rows,
            "definition": i.definition,
        })
    };
    match u {
        Unregistered::PgColumn { schema, table, column, column_type, rows_estimate, indexes } => json!({
            "kind": "column", "schema": schema, "table": table, "column": column, "column_type": column_type,
            "rows_estimate": rows_estimate, "indexes": indexes.iter().map(index).collect::<Vec<_>>(),
        }),
        Unregistered::PgIndex { table, column, registered_as, index: i } => json!({
            "kind": "index", "table": table, "column": column, "registered_as": registered_as, "index": index(i),
        }),
        Unregistered::Vec0Table { name } => json!({ "kind": "vec0_table", "name": name }),
        _ => Value::Null,
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
    let fragments = r.fragments.as_ref().map(|f| {
        json!({
            "migrations": f.migrations.iter().map(|m| json!({ "version": m.version, "name": m.name, "applied": m.applied })).collect::<Vec<_>>(),
            "foreign_keys": f.foreign_keys.map(|fk| json!({ "declared": fk.declared, "enforced": fk.enforced })),
            "rows": f.rows.map(|n| json!({
                "fragments": n.fragments, "embeddings": n.embeddings, "with_vector": n.with_vector, "orphans": n.orphans,
            })),
        })
    });
    let value = json!({
        "backend": match r.backend { diesel_vector::database::BackendKind::Postgres => "postgresql", _ => "sqlite" },
        "server_version": r.server_version,
        "extension": extension,
        "migrations": {
            "recorded": r.migrations.recorded, "applied": r.migrations.applied,
            "directory": r.migrations.directory.as_ref().map(|d| d.display().to_string()),
            "pending": r.migrations.pending,
        },
        "indexes": r.indexes.iter().map(index_json).collect::<Vec<_>>(),
        "unregistered": r.unregistered.iter().map(unregistered_json).collect::<Vec<_>>(),
        "fragments": fragments,
        "verdict": r.verdict(),
        "needs_action": r.needs_action(),
        "findings": r.findings.iter().map(|f| json!({
            "level": f.level.name(), "message": f.message,
            "action": f.remedy.as_ref().and_then(remedy_text),
        })).collect::<Vec<_>>(),
    });
    json_safe(value.to_string())
}

pub(crate) fn hits_text(spec: &IndexSpec, hits: &[Hit]) -> io::Result<()> {
    say!("{:>4}  {:>12}  {}", "rank", "distance", spec.id_column())?;
    for (rank, h) in hits.iter().enumerate() {
        say!("{:>4}  {:>12.6}  {}", rank + 1, h.distance, h.id)?;
    }
    Ok(())
}

pub(crate) fn hits_json(hits: &[Hit]) -> String {
    Value::Array(
        hits.iter()
            .enumerate()
            .map(|(rank, h)| json!({ "rank": rank + 1, "id": h.id, "distance": h.distance }))
            .collect(),
    )
    .to_string()
}

fn content(fragments: &[Fragment], id: i64) -> &str {
    fragments.iter().find(|f| f.id == id).map_or("", |f| f.content.as_str())
}

pub(crate) fn search_text(hits: &[Neighbor], fragments: &[Fragment], tty: bool) -> io::Result<()> {
    say!("{:>4}  {:>10}  {:>10}  {:>10}  content", "rank", "distance", "id", "fragment")?;
    for (rank, h) in hits.iter().enumerate() {
        let text = escape(content(fragments, h.fragment_id)).into_owned();
        // On a terminal, one line per hit; piped, the whole text.
        let text = if tty && text.chars().count() > 80 {
            format!("{}...", text.chars().take(77).collect::<String>())
        } else {
            text
        };
        say!("{:>4}  {:>10.6}  {:>10}  {:>10}  {text}", rank + 1, h.distance, h.id, h.fragment_id)?;
    }
    Ok(())
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
