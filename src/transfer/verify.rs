//! Comparing a table on two databases: both sides are streamed in id order (keyset pagination, so memory
//! does not grow with the table), every row is hashed in the backend-neutral form, and the two streams
//! are merged by id. The result is each side's row count and order-independent [`Checksum`], plus the
//! first ids that differ, are missing or are extra.

use std::collections::VecDeque;

use diesel::result::Error as DieselError;

use super::checksum::{Checksum, RowHasher};
use super::{keep_reported, partition_checked, InvalidRow, Range, Rows, Store};

/// How many differing ids a comparison keeps to report.
pub(crate) const MAX_REPORTED_IDS: usize = 20;

/// How many invalid rows a comparison keeps to report (all are counted).
pub(crate) const MAX_REPORTED_INVALID: usize = 1000;

/// A side's row count and checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sums {
    /// Rows compared.
    pub rows: u64,
    /// Their checksum.
    pub checksum: Checksum,
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
    /// Ids that differ, or exist on one side only (the first [`MAX_REPORTED_IDS`]).
    pub(crate) differing_ids: Vec<i64>,
    /// How many ids differ in all.
    pub(crate) differing: u64,
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

/// One side's stream of `(id, row hash)` in id order, fetched `limit` rows at a time.
struct Cursor {
    buffer: VecDeque<(i64, u64)>,
    after: i64,
    upto: i64,
    limit: i64,
    exhausted: bool,
}

impl Cursor {
    fn new(upto: i64, limit: i64) -> Self {
        Self { buffer: VecDeque::new(), after: super::BEFORE_ALL, upto, limit, exhausted: false }
    }

    fn peek<E>(
        &mut self,
        fetch: &mut impl FnMut(Range) -> Result<(Vec<(i64, u64)>, i64), E>,
    ) -> Result<Option<(i64, u64)>, E> {
        while self.buffer.is_empty() && !self.exhausted {
            let (rows, last_id) = fetch(Range { after: self.after, upto: self.upto, limit: self.limit })?;
            if last_id <= self.after {
                self.exhausted = true;
            }
            self.after = last_id.max(self.after);
            self.buffer.extend(rows);
        }
        Ok(self.buffer.front().copied())
    }

    fn advance(&mut self) {
        self.buffer.pop_front();
    }
}

/// One page of a side's stream: `(id, row hash)` pairs and the last id read.
type Page = (Vec<(i64, u64)>, i64);

/// Compares the rows of `R`'s table with `id <= upto` on `source` and `target`. Invalid source rows are
/// an error unless `skip_invalid`, when they are left out (they were not copied) and reported.
///
/// The source is read and hashed on a second thread, one page ahead of the merge, while this thread
/// reads and hashes the target: the comparison takes about as long as the slower side.
pub(crate) fn compare<R: Rows, S: Store, T: Store>(
    source: &mut S,
    target: &mut T,
    upto: i64,
    batch: i64,
    skip_invalid: bool,
) -> Result<Comparison, CompareError> {
    std::thread::scope(|scope| {
        let (sender, pages) = std::sync::mpsc::sync_channel(1);
        let reader = scope.spawn(move || read_source::<R, S>(source, upto, batch, skip_invalid, &sender));
        let merged = merge::<R, T>(target, upto, batch, &pages);
        // An early return of the merge (an error) hangs up: the reader stops at its next page.
        drop(pages);
        let (skipped, skipped_count) = reader.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let mut out = merged?;
        out.skipped = skipped;
        out.skipped_count = skipped_count;
        Ok(out)
    })
}

/// The source side: reads pages in id order, checks and hashes every row, and sends the pages (the
/// last one empty) until the source is exhausted, a read fails or invalid rows are found in strict
/// mode (the error is sent), or the merge hangs up. Returns the invalid rows left out (the first
/// [`MAX_REPORTED_INVALID`]) and how many there were.
fn read_source<R: Rows, S: Store>(
    source: &mut S,
    upto: i64,
    limit: i64,
    skip_invalid: bool,
    sender: &std::sync::mpsc::SyncSender<Result<Page, CompareError>>,
) -> (Vec<InvalidRow>, u64) {
    let (mut skipped, mut skipped_count) = (Vec::new(), 0u64);
    let mut after = super::BEFORE_ALL;
    loop {
        let page = (|| {
            let range = Range { after, upto, limit };
            let raws = R::read(source, range).map_err(CompareError::Source)?;
            let last = raws.last().map_or(range.after, R::id);
            let (rows, invalid) =
                partition_checked(raws, |raw| R::check(raw).map(|row| (R::row_id(&row), R::hash(&row))));
            if !invalid.is_empty() && !skip_invalid {
                return Err(CompareError::Invalid(invalid));
            }
            skipped_count += invalid.len() as u64;
            keep_reported(&mut skipped, invalid);
            Ok((rows, last))
        })();
        let last = match &page {
            Ok((_, last)) => Some(*last),
            Err(_) => None,
        };
        if sender.send(page).is_err() {
            break;
        }
        match last {
            Some(last) if last > after => after = last,
            // Exhausted (an empty page) or failed.
            _ => break,
        }
    }
    (skipped, skipped_count)
}

/// Merges the source's pages with the target's rows, read and hashed here, by id.
fn merge<R: Rows, T: Store>(
    target: &mut T,
    upto: i64,
    batch: i64,
    pages: &std::sync::mpsc::Receiver<Result<Page, CompareError>>,
) -> Result<Comparison, CompareError> {
    let mut out = Comparison::default();
    // The reader sends pages in order; when it has hung up, the source is exhausted.
    let mut fetch_source =
        |range: Range| -> Result<Page, CompareError> { pages.recv().unwrap_or_else(|_| Ok((Vec::new(), range.after))) };
    let mut fetch_target = |range: Range| -> Result<Page, CompareError> {
        let raws = R::read(target, range).map_err(CompareError::Target)?;
        let last = raws.last().map_or(range.after, R::id);
        let rows = raws
            .into_iter()
            .map(|raw| {
                let id = R::id(&raw);
                // A row the target holds but cannot decode never matches the source's.
                let hash = R::check(raw).map_or_else(|_| RowHasher::new(b'X').int(id).finish(), |row| R::hash(&row));
                (id, hash)
            })
            .collect();
        Ok((rows, last))
    };
    let (mut s, mut t) = (Cursor::new(upto, batch), Cursor::new(upto, batch));
    loop {
        let (a, b) = (s.peek(&mut fetch_source)?, t.peek(&mut fetch_target)?);
        let differing_id = match (a, b) {
            (None, None) => break,
            (Some((id, hash)), None) => {
                out.source.add(hash);
                s.advance();
                id
            }
            (None, Some((id, hash))) => {
                out.target.add(hash);
                t.advance();
                id
            }
            (Some((ia, ha)), Some((ib, hb))) => {
                if ia <= ib {
                    out.source.add(ha);
                    s.advance();
                }
                if ib <= ia {
                    out.target.add(hb);
                    t.advance();
                }
                if ia == ib && ha == hb {
                    continue;
                }
                ia.min(ib)
            }
        };
        out.differing += 1;
        if out.differing_ids.len() < MAX_REPORTED_IDS {
            out.differing_ids.push(differing_id);
        }
    }
    Ok(out)
}
