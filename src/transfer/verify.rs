//! Comparing a table on two databases: both sides are streamed in key order (keyset pagination, so memory
//! does not grow with the table), every source row is checked and converted to the target's classes, every
//! row is hashed in the neutral form, and the two streams are merged by key. The result is each side's row
//! count and order-independent [`Checksum`](super::checksum::Checksum), the first keys that differ, and
//! the first key the target holds differently or alone, and the first it lacks (which tell a resumable
//! earlier copy from rows of another origin).

use std::collections::{HashSet, VecDeque};

use diesel::result::Error as DieselError;

use super::sql::KeyRange;
use super::table::{Side, TablePlan};
use super::value::Key;
use super::{check, hash_row, keep_reported, key_of, unreadable_hash, InvalidRow, Store};

/// How many differing keys a comparison keeps to report.
pub(crate) const MAX_REPORTED_KEYS: usize = 20;

/// How many invalid rows a comparison keeps to report (all are counted).
pub(crate) const MAX_REPORTED_INVALID: usize = 1000;

/// A side's row count and checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sums {
    /// Rows compared.
    pub rows: u64,
    /// Their checksum.
    pub checksum: super::checksum::Checksum,
}

impl Sums {
    pub(crate) fn add(&mut self, hash: u64) {
        self.rows += 1;
        self.checksum.add(hash);
    }
}

/// The outcome of comparing one table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Comparison {
    pub(crate) source: Sums,
    pub(crate) target: Sums,
    /// Keys that differ, or exist on one side only (the first [`MAX_REPORTED_KEYS`]).
    pub(crate) differing_keys: Vec<Key>,
    /// How many keys differ in all.
    pub(crate) differing: u64,
    /// The first key the target holds with other contents than the source, or that the source lacks.
    pub(crate) first_foreign: Option<Key>,
    /// The first key of a source row the target lacks.
    pub(crate) first_missing: Option<Key>,
    /// The last key both sides hold alike before the first difference.
    pub(crate) matched_until: Option<Key>,
    /// Source rows left out because they are invalid (only with `skip_invalid`), the first
    /// [`MAX_REPORTED_INVALID`].
    pub(crate) skipped: Vec<InvalidRow>,
    /// How many were left out in all.
    pub(crate) skipped_count: u64,
}

/// Why a comparison stopped.
#[derive(Debug)]
pub(crate) enum CompareError {
    Source(DieselError),
    Target(DieselError),
    /// Invalid source rows, in strict mode.
    Invalid(Vec<InvalidRow>),
}

/// One page of a side's stream: `(key, row hash)` pairs in key order.
type Page = Vec<(Key, u64)>;

/// One side's stream, fetched a page at a time.
struct Cursor {
    buffer: VecDeque<(Key, u64)>,
    exhausted: bool,
}

impl Cursor {
    fn new() -> Self {
        Self { buffer: VecDeque::new(), exhausted: false }
    }

    fn peek<E>(&mut self, fetch: &mut impl FnMut() -> Result<Page, E>) -> Result<Option<&(Key, u64)>, E> {
        while self.buffer.is_empty() && !self.exhausted {
            let page = fetch()?;
            if page.is_empty() {
                self.exhausted = true;
            }
            self.buffer.extend(page);
        }
        Ok(self.buffer.front())
    }

    fn pop(&mut self) -> Option<(Key, u64)> {
        self.buffer.pop_front()
    }
}

/// What to compare: the plan's table, rows with keys up to `upto`, `batch` rows per read.
pub(crate) struct Scope<'a> {
    pub(crate) plan: &'a TablePlan,
    pub(crate) upto: Option<&'a Key>,
    pub(crate) batch: i64,
    pub(crate) skip_invalid: bool,
    /// Source rows the target refused (skipped): not expected on the target.
    pub(crate) refused: &'a HashSet<Key>,
}

/// Compares the rows of `scope` on `source` and `target`. Invalid source rows are an error unless
/// `skip_invalid`, when they are left out (they were not copied) and reported.
///
/// The source is read, checked and hashed on a second thread, one page ahead of the merge, while this
/// thread reads and hashes the target: the comparison takes about as long as the slower side.
pub(crate) fn compare<S: Store, T: Store>(
    source: &mut S,
    target: &mut T,
    scope: &Scope<'_>,
) -> Result<Comparison, CompareError> {
    std::thread::scope(|threads| {
        let (sender, pages) = std::sync::mpsc::sync_channel(1);
        let reader = threads.spawn(move || read_source(source, scope, &sender));
        let merged = merge(target, scope, &pages);
        // An early return of the merge (an error) hangs up: the reader stops at its next page.
        drop(pages);
        let (skipped, skipped_count) = reader.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let mut out = merged?;
        out.skipped = skipped;
        out.skipped_count = skipped_count;
        Ok(out)
    })
}

/// The source side: reads pages in key order, checks, converts and hashes every row, and sends the pages
/// (the last one empty) until the source is exhausted, a read fails or invalid rows are found in strict
/// mode (the error is sent), or the merge hangs up. Returns the invalid rows left out (the first
/// [`MAX_REPORTED_INVALID`]) and how many there were.
fn read_source<S: Store>(
    source: &mut S,
    scope: &Scope<'_>,
    sender: &std::sync::mpsc::SyncSender<Result<Page, CompareError>>,
) -> (Vec<InvalidRow>, u64) {
    let (mut skipped, mut skipped_count) = (Vec::new(), 0u64);
    let mut after: Option<Key> = None;
    loop {
        let page = (|| {
            let range = KeyRange { after: after.as_ref(), upto: scope.upto, limit: Some(scope.batch) };
            let rows = source.read(scope.plan, Side::Source, &range).map_err(CompareError::Source)?;
            let mut page = Vec::with_capacity(rows.len());
            let mut invalid = Vec::new();
            for cells in rows {
                let key = key_of(&cells, scope.plan).map_err(CompareError::Source)?;
                if scope.refused.contains(&key) {
                    page.push((key, None));
                    continue;
                }
                match check(scope.plan, &key, cells) {
                    Ok(values) => page.push((key, Some(hash_row(&values)))),
                    Err(bad) => {
                        invalid.push(bad);
                        page.push((key, None));
                    }
                }
            }
            if !invalid.is_empty() && !scope.skip_invalid {
                return Err(CompareError::Invalid(invalid));
            }
            skipped_count += invalid.len() as u64;
            keep_reported(&mut skipped, invalid);
            Ok(page)
        })();
        let last = match &page {
            Ok(rows) => rows.last().map(|(k, _)| k.clone()),
            Err(_) => None,
        };
        // Rows left out still advance the cursor; an empty page (all left out) is not the end.
        let sent = page.map(|rows| rows.into_iter().filter_map(|(k, h)| h.map(|h| (k, h))).collect::<Page>());
        let page_was_empty_but_not_last = matches!(&sent, Ok(p) if p.is_empty()) && last.is_some();
        if !page_was_empty_but_not_last && sender.send(sent).is_err() {
            break;
        }
        match last {
            Some(last) => after = Some(last),
            // Exhausted (an empty page, which was sent) or failed.
            None => break,
        }
    }
    (skipped, skipped_count)
}

/// Merges the source's pages with the target's rows, read and hashed here, by key.
fn merge<T: Store>(
    target: &mut T,
    scope: &Scope<'_>,
    pages: &std::sync::mpsc::Receiver<Result<Page, CompareError>>,
) -> Result<Comparison, CompareError> {
    let mut out = Comparison::default();
    // The reader sends pages in order; when it has hung up, the source is exhausted.
    let mut fetch_source = || -> Result<Page, CompareError> { pages.recv().unwrap_or_else(|_| Ok(Vec::new())) };
    let mut target_after: Option<Key> = None;
    let mut fetch_target = || -> Result<Page, CompareError> {
        let range = KeyRange { after: target_after.as_ref(), upto: scope.upto, limit: Some(scope.batch) };
        let rows = target.read(scope.plan, Side::Target, &range).map_err(CompareError::Target)?;
        let mut page = Vec::with_capacity(rows.len());
        for cells in rows {
            let key = key_of(&cells, scope.plan).map_err(CompareError::Target)?;
            let values: Result<Vec<_>, _> = cells.into_iter().collect();
            // A row the target holds but cannot read never matches the source's.
            let hash = values.map_or_else(|_| unreadable_hash(&key), |v| hash_row(&v));
            page.push((key, hash));
        }
        if let Some((last, _)) = page.last() {
            target_after = Some(last.clone());
        }
        Ok(page)
    };
    let (mut s, mut t) = (Cursor::new(), Cursor::new());
    loop {
        let a = s.peek(&mut fetch_source)?.map(|(k, _)| k.clone());
        let b = t.peek(&mut fetch_target)?.map(|(k, _)| k.clone());
        let (differing, foreign) = match (a, b) {
            (None, None) => break,
            (Some(_), None) => (take(&mut s, &mut out.source), false),
            (None, Some(_)) => (take(&mut t, &mut out.target), true),
            (Some(ka), Some(kb)) if ka < kb => (take(&mut s, &mut out.source), false),
            (Some(ka), Some(kb)) if ka > kb => (take(&mut t, &mut out.target), true),
            (Some(_), Some(_)) => {
                let (key, ha) = s.pop().unwrap_or_else(|| unreachable!("peeked"));
                let (_, hb) = t.pop().unwrap_or_else(|| unreachable!("peeked"));
                out.source.add(ha);
                out.target.add(hb);
                if ha == hb {
                    if out.differing == 0 {
                        out.matched_until = Some(key);
                    }
                    continue;
                }
                (key, true)
            }
        };
        if foreign {
            out.first_foreign.get_or_insert_with(|| differing.clone());
        } else {
            out.first_missing.get_or_insert_with(|| differing.clone());
        }
        out.differing += 1;
        if out.differing_keys.len() < MAX_REPORTED_KEYS {
            out.differing_keys.push(differing);
        }
    }
    Ok(out)
}

/// Pops the cursor's next row into `sums`; returns its key.
fn take(cursor: &mut Cursor, sums: &mut Sums) -> Key {
    let (key, hash) = cursor.pop().unwrap_or_else(|| unreachable!("peeked"));
    sums.add(hash);
    key
}
