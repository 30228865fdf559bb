//! [`IndexSpec`]: what a vector index is, declared once.

use std::fmt;
use std::str::FromStr;

use super::ident::{Ident, IdentError, MAX_IDENT_BYTES};
use crate::VectorKind;

/// The SQL type of a vector column: the crate's [`VectorKind`], seen from an index.
pub type Element = VectorKind;

/// What an index needs to know of each vector type, beside what [`VectorKind`] says of its values.
impl VectorKind {
    /// pgvector's name for the type: `vector`, `halfvec`, `bit`, `sparsevec`.
    pub const fn name(self) -> &'static str {
        self.pgvector_name()
    }

    /// The most dimensions pgvector's HNSW and ivfflat indexes take for this type, or `None` when the
    /// limit is not on the dimensions (`sparsevec`: at most 1000 non-zero elements per row).
    pub fn max_index_dims(self) -> Option<u32> {
        match self {
            Self::Vector => Some(2000),
            Self::HalfVector => Some(4000),
            Self::Bit => Some(64_000),
            Self::SparseVector => None,
        }
    }

    /// The metrics that apply to this type.
    pub fn metrics(self) -> &'static [Metric] {
        match self {
            Self::Vector | Self::HalfVector | Self::SparseVector => {
                &[Metric::Cosine, Metric::L2, Metric::L1, Metric::InnerProduct]
            }
            Self::Bit => &[Metric::Hamming, Metric::Jaccard],
        }
    }

    /// The metric an index of this type uses when none is given: cosine, or Hamming for `bit`.
    pub fn default_metric(self) -> Metric {
        match self {
            Self::Bit => Metric::Hamming,
            _ => Metric::Cosine,
        }
    }

    /// The column type in PostgreSQL, such as `vector(768)`.
    pub fn pg_type(self, dims: u32) -> String {
        format!("{}({dims})", self.name())
    }
}

/// Parses pgvector's name for a type (`vector`, `halfvec`, `bit`, `sparsevec`).
impl FromStr for VectorKind {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|e| e.name() == s).ok_or_else(|| SpecError::UnknownName {
            what: "vector type",
            name: s.to_owned(),
            expected: "vector, halfvec, bit, sparsevec",
        })
    }
}

/// A distance; smaller is always nearer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Metric {
    /// `1 - cos(a, b)`: pgvector `<=>`, sqlite-vec `vec_distance_cosine`.
    Cosine,
    /// Euclidean distance: pgvector `<->`, sqlite-vec `vec_distance_l2`.
    L2,
    /// Manhattan distance: pgvector `<+>`, sqlite-vec `vec_distance_l1`.
    L1,
    /// The negative inner product: pgvector `<#>`; on SQLite the crate's function.
    InnerProduct,
    /// The number of differing bits (`bit` only): pgvector `<~>`, sqlite-vec `vec_distance_hamming`.
    Hamming,
    /// `1 - |a ∧ b| / |a ∨ b|` (`bit` only): pgvector `<%>`; on SQLite the crate's function.
    Jaccard,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 6] =
        [Metric::Cosine, Metric::L2, Metric::L1, Metric::InnerProduct, Metric::Hamming, Metric::Jaccard];

    /// The metric's name, as the registry and telemetry spell it: `cosine`, `l2`, `l1`, `inner_product`,
    /// `hamming`, `jaccard`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cosine => "cosine",
            Self::L2 => "l2",
            Self::L1 => "l1",
            Self::InnerProduct => "inner_product",
            Self::Hamming => "hamming",
            Self::Jaccard => "jaccard",
        }
    }

    /// The suffix of pgvector's operator classes for this metric (`cosine` in `vector_cosine_ops`).
    pub(crate) fn opclass_suffix(self) -> &'static str {
        match self {
            Self::Cosine => "cosine",
            Self::L2 => "l2",
            Self::L1 => "l1",
            Self::InnerProduct => "ip",
            Self::Hamming => "hamming",
            Self::Jaccard => "jaccard",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a metric's name; `inner-product` (the CLI's spelling) is accepted too.
impl FromStr for Metric {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = if s == "inner-product" { "inner_product" } else { s };
        Self::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| SpecError::UnknownName {
            what: "metric",
            name: s.to_owned(),
            expected: "cosine, l2, l1, inner_product, hamming, jaccard",
        })
    }
}

/// The approximate index PostgreSQL keeps for the column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PgIndex {
    /// pgvector's HNSW graph: good recall from the first row, no rebuild as data grows.
    #[default]
    Hnsw,
    /// pgvector's ivfflat lists: cheaper to build, but built on an empty table it recalls poorly until
    /// rebuilt once data is loaded.
    Ivfflat,
    /// No index: searches scan every row exactly.
    None,
    /// Binary quantization (`vector` columns): an HNSW index on each vector's signs,
    /// `(binary_quantize(column)::bit(N)) bit_hamming_ops`, a 32nd of the vectors' size. A search takes
    /// `k` × a rerank factor candidates by Hamming distance from it, then ranks them by their exact
    /// distance under the search's metric. Any dimensions up to 16000 (HNSW on `vector` stops at 2000).
    BinaryQuantized,
}

impl PgIndex {
    /// `hnsw`, `ivfflat`, `none` or `binary_quantized`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hnsw => "hnsw",
            Self::Ivfflat => "ivfflat",
            Self::None => "none",
            Self::BinaryQuantized => "binary_quantized",
        }
    }

    /// pgvector's access method for the index: `hnsw` (binary quantization included) or `ivfflat`;
    /// `None` without an index.
    pub fn method(self) -> Option<&'static str> {
        match self {
            Self::Hnsw | Self::BinaryQuantized => Some("hnsw"),
            Self::Ivfflat => Some("ivfflat"),
            Self::None => None,
        }
    }
}

impl fmt::Display for PgIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PgIndex {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = if s == "binary-quantized" { "binary_quantized" } else { s };
        [Self::Hnsw, Self::Ivfflat, Self::None, Self::BinaryQuantized].into_iter().find(|k| k.name() == s).ok_or_else(
            || SpecError::UnknownName {
                what: "PostgreSQL index",
                name: s.to_owned(),
                expected: "hnsw, ivfflat, none, binary_quantized",
            },
        )
    }
}

/// The structures the crate keeps on SQLite for an index, beside the change queue every index has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SqliteIndex {
    /// The crate's quantized codes, searched in memory (needs no extension).
    pub codes: bool,
    /// sqlite-vec's `vec0` table (kept only on connections that have sqlite-vec).
    pub vec0: bool,
    /// A contiguous copy of the vectors in the codes' order (`<name>_vectors`), which exact searches scan
    /// at memory speed instead of reading the table row by row; it doubles the space the vectors take and
    /// the work of writing them (BENCHMARKS.md measures both). Needs `codes`.
    pub vectors: bool,
}

impl SqliteIndex {
    /// Only the crate's quantized codes.
    pub const CODES: Self = Self { codes: true, vec0: false, vectors: false };
    /// Only sqlite-vec's `vec0` table.
    pub const VEC0: Self = Self { codes: false, vec0: true, vectors: false };
    /// Both.
    pub const CODES_AND_VEC0: Self = Self { codes: true, vec0: true, vectors: false };
    /// The codes and the contiguous copy of the vectors for exact searches.
    pub const CODES_AND_VECTORS: Self = Self { codes: true, vec0: false, vectors: true };
    /// Neither: searches scan every row exactly.
    pub const NONE: Self = Self { codes: false, vec0: false, vectors: false };

    /// The registry's spelling: the structures kept, comma-separated, in the order `codes`, `vec0`,
    /// `vectors` (`codes`, `codes,vec0`, `codes,vectors`, ...), or `none`.
    pub fn name(self) -> &'static str {
        match (self.codes, self.vec0, self.vectors) {
            (true, true, true) => "codes,vec0,vectors",
            (true, true, false) => "codes,vec0",
            (true, false, true) => "codes,vectors",
            (true, false, false) => "codes",
            (false, true, true) => "vec0,vectors",
            (false, true, false) => "vec0",
            (false, false, true) => "vectors",
            (false, false, false) => "none",
        }
    }
}

/// The codes alone, the default for the columns they index (`vector`, `halfvec`; see
/// [`IndexSpecBuilder::sqlite_index`]).
impl Default for SqliteIndex {
    fn default() -> Self {
        Self::CODES
    }
}

impl fmt::Display for SqliteIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SqliteIndex {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = Self::NONE;
        for part in s.split(',').map(str::trim) {
            match part {
                "codes" => out.codes = true,
                "vec0" => out.vec0 = true,
                "vectors" => out.vectors = true,
                "none" if s.trim() == "none" => {}
                _ => {
                    return Err(SpecError::UnknownName {
                        what: "SQLite index",
                        name: s.to_owned(),
                        expected: "codes, vec0, codes,vec0, codes,vectors, none",
                    })
                }
            }
        }
        Ok(out)
    }
}

/// Why an index declaration is not valid. Each message names the value and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A table or column name that no database can hold.
    #[error(transparent)]
    Ident(#[from] IdentError),
    /// A name (metric, type, index kind) that is not one of the known ones.
    #[error("unknown {what} `{name}`: expected one of {expected}")]
    UnknownName {
        /// What was named.
        what: &'static str,
        /// The name given.
        name: String,
        /// The names that would be valid.
        expected: &'static str,
    },
    /// Dimensions outside `1..=` the type's limit.
    #[error("{dims} dimensions for a `{element}` column: expected 1 to {max}")]
    Dimensions {
        /// The type.
        element: Element,
        /// The dimensions given.
        dims: u64,
        /// The type's limit.
        max: u32,
    },
    /// A `bit` column whose length is not a multiple of 8, which SQLite's BLOB format cannot keep.
    #[error(
        "a `bit({dims})` column cannot be stored on SQLite, whose BLOBs hold whole bytes (sqlite-vec's `bit[N]` \
         format): use a multiple of 8 dimensions"
    )]
    BitLength {
        /// The dimensions given.
        dims: u32,
    },
    /// A metric that does not apply to the column's type.
    #[error("the {metric} metric does not apply to `{element}` columns: use one of {}", list(element.metrics()))]
    MetricForElement {
        /// The type.
        element: Element,
        /// The metric.
        metric: Metric,
    },
    /// A PostgreSQL index kind that pgvector does not offer for this type and metric.
    #[error("pgvector has no {index} index for {metric} on `{element}` columns: {hint}")]
    PgIndexUnsupported {
        /// The index kind.
        index: PgIndex,
        /// The type.
        element: Element,
        /// The metric.
        metric: Metric,
        /// What would work instead.
        hint: &'static str,
    },
    /// More dimensions than pgvector's indexes take.
    #[error("pgvector's {index} index takes at most {max} dimensions of `{element}` ({dims} given): {hint}")]
    PgIndexDimensions {
        /// The index kind.
        index: PgIndex,
        /// The type.
        element: Element,
        /// The dimensions given.
        dims: u32,
        /// The limit.
        max: u32,
        /// What would work instead.
        hint: &'static str,
    },
    /// The crate's quantized codes index `vector` and `halfvec` columns only.
    #[error(
        "the SQLite structure `codes` indexes `vector` and `halfvec` columns, not a `{element}` column: {hint} \
         (searches then scan every row exactly)"
    )]
    CodesUnsupported {
        /// The column's type.
        element: Element,
        /// What to keep instead.
        hint: &'static str,
    },
    /// The contiguous copy of the vectors is laid out in the codes' order, so it needs them.
    #[error("the SQLite structure `vectors` is kept in the order of the quantized codes: keep `codes,vectors`")]
    VectorsWithoutCodes,
    /// sqlite-vec's `vec0` cannot hold this column.
    #[error("sqlite-vec's vec0 cannot index this column: {reason}")]
    Vec0Unsupported {
        /// Why.
        reason: String,
    },
    /// Two roles for one column.
    #[error("column `{column}` is both {first} and {second}: give each role its own column")]
    ColumnRoles {
        /// The column.
        column: String,
        /// One role.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
}

fn list(metrics: &[Metric]) -> String {
    metrics.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
}

/// A vector index, declared once: which column of which table, its type, dimensions and metric, the
/// columns a search may filter on by equality (pushed into the index), and the structures each backend
/// keeps for it.
///
/// Build one with [`IndexSpec::builder`] (or the [`vector_index!`](crate::vector_index) macro, which
/// checks the names against your `table!`), read one from a database's registry
/// ([`registry`](super::registry)), and render its migrations with [`generate`](super::generate).
///
/// ```
/// use diesel_vector::index::{IndexSpec, Metric, PgIndex};
///
/// let spec = IndexSpec::builder("documents", "embedding", 768)
///     .metric(Metric::Cosine)
///     .partition_by(["lang"])
///     .build()?;
/// assert_eq!(spec.name(), "__dv_documents_embedding");
/// assert_eq!(spec.pg_index(), PgIndex::Hnsw);
/// assert_eq!(spec.pg_index_name(), Some("documents_embedding_cosine_idx"));
/// assert_eq!(spec.queue_table(), "__dv_documents_embedding_queue");
///
/// // Bad declarations are errors that say what would be valid.
/// let err = IndexSpec::builder("documents", "embedding", 0).build().unwrap_err();
/// assert_eq!(err.to_string(), "0 dimensions for a `vector` column: expected 1 to 16000");
/// # Ok::<(), diesel_vector::index::SpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndexSpec {
    name: Ident,
    table: Ident,
    id_column: Ident,
    column: Ident,
    element: Element,
    dims: u32,
    metric: Metric,
    partition_by: Vec<Ident>,
    pg_index: PgIndex,
    pg_index_name: Option<Ident>,
    pg_cast: Option<Element>,
    sqlite_index: SqliteIndex,
}

/// Builds an [`IndexSpec`]; [`IndexSpecBuilder::build`] checks everything at once.
#[derive(Debug, Clone)]
#[must_use]
pub struct IndexSpecBuilder {
    table: String,
    column: String,
    dims: u64,
    name: Option<String>,
    id_column: String,
    element: Element,
    metric: Option<Metric>,
    partition_by: Vec<String>,
    pg_index: PgIndex,
    pg_index_name: Option<String>,
    sqlite_index: Option<SqliteIndex>,
}

impl IndexSpecBuilder {
    /// The index's name (default `__dv_<table>_<column>`). On SQLite its structures are named after it
    /// (`<name>_queue`, `<name>_state`, ...); a name starting with `__` keeps them out of `diesel
    /// print-schema`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The primary-key column (default `id`): an integer column that identifies a row for good.
    pub fn id_column(mut self, column: impl Into<String>) -> Self {
        self.id_column = column.into();
        self
    }

    /// The column's type (default [`Element::Vector`]).
    pub fn element(mut self, element: Element) -> Self {
        self.element = element;
        self
    }

    /// The metric searches use by default and the index is built for (default cosine; Hamming for `bit`).
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metric = Some(metric);
        self
    }

    /// The columns a search may filter on by equality, pushed into the index.
    pub fn partition_by<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.partition_by = columns.into_iter().map(Into::into).collect();
        self
    }

    /// PostgreSQL's index (default [`PgIndex::Hnsw`]).
    pub fn pg_index(mut self, index: PgIndex) -> Self {
        self.pg_index = index;
        self
    }

    /// The PostgreSQL index's name (default `<table>_<column>_<metric>_idx`, shortened with a hash when
    /// longer than PostgreSQL keeps).
    pub fn pg_index_name(mut self, name: impl Into<String>) -> Self {
        self.pg_index_name = Some(name.into());
        self
    }

    /// The structures SQLite keeps (default [`SqliteIndex::CODES`] for `vector` and `halfvec` columns,
    /// [`SqliteIndex::NONE`] for `bit` and `sparsevec`, which the codes do not index: declaring `codes` on
    /// them is [`SpecError::CodesUnsupported`]).
    pub fn sqlite_index(mut self, index: SqliteIndex) -> Self {
        self.sqlite_index = Some(index);
        self
    }

    /// Checks the declaration and makes the spec.
    ///
    /// # Errors
    ///
    /// [`SpecError`] naming the first problem: a name no database can hold, dimensions outside the type's
    /// range, a metric that does not apply to the type, an index pgvector or sqlite-vec cannot build for
    /// it, or one column in two roles.
    pub fn build(self) -> Result<IndexSpec, SpecError> {
        let table = Ident::new(&self.table, "table")?;
        let column = Ident::new(&self.column, "vector column")?;
        let id_column = Ident::new(&self.id_column, "id column")?;
        let element = self.element;
        let max = u32::try_from(element.max_dims()).unwrap_or(u32::MAX);
        let dims = u32::try_from(self.dims).ok().filter(|d| (1..=max).contains(d)).ok_or(SpecError::Dimensions {
            element,
            dims: self.dims,
            max,
        })?;
        if element == Element::Bit && dims % 8 != 0 {
            return Err(SpecError::BitLength { dims });
        }
        let metric = self.metric.unwrap_or(element.default_metric());
        if !element.metrics().contains(&metric) {
            return Err(SpecError::MetricForElement { element, metric });
        }
        if id_column == column {
            return Err(SpecError::ColumnRoles {
                column: column.to_string(),
                first: "the id column",
                second: "the vector column",
            });
        }
        let mut partition_by: Vec<Ident> = Vec::with_capacity(self.partition_by.len());
        for name in &self.partition_by {
            let p = Ident::new(name, "partition column")?;
            if p == column {
                return Err(SpecError::ColumnRoles {
                    column: p.to_string(),
                    first: "the vector column",
                    second: "a partition column",
                });
            }
            if partition_by.contains(&p) {
                return Err(SpecError::ColumnRoles {
                    column: p.to_string(),
                    first: "a partition column",
                    second: "a partition column again",
                });
            }
            partition_by.push(p);
        }
        let pg_cast = check_pg_index(self.pg_index, element, metric, dims)?;
        let sqlite_index = self.sqlite_index.unwrap_or(if codes_fit(element, metric) {
            SqliteIndex::CODES
        } else {
            SqliteIndex::NONE
        });
        if sqlite_index.codes && !codes_fit(element, metric) {
            let hint = if element == Element::Bit {
                "keep `vec0` (sqlite-vec's bit vectors) or `none`"
            } else {
                "keep `none`"
            };
            return Err(SpecError::CodesUnsupported { element, hint });
        }
        if sqlite_index.vec0 {
            check_vec0(element, metric, dims)?;
        }
        if sqlite_index.vectors && !sqlite_index.codes {
            return Err(SpecError::VectorsWithoutCodes);
        }
        let name = match self.name {
            Some(name) => Ident::new(&name, "index name")?,
            None => bounded(&format!("__dv_{table}_{column}")),
        };
        let pg_index_name = match (self.pg_index, self.pg_index_name) {
            (PgIndex::None, _) => None,
            (_, Some(name)) => Some(Ident::new(&name, "PostgreSQL index name")?),
            (PgIndex::BinaryQuantized, None) => Some(bounded(&format!("{table}_{column}_bq_idx"))),
            (_, None) => Some(bounded(&format!("{table}_{column}_{}_idx", metric.opclass_suffix()))),
        };
        Ok(IndexSpec {
            name,
            table,
            id_column,
            column,
            element,
            dims,
            metric,
            partition_by,
            pg_index: self.pg_index,
            pg_index_name,
            pg_cast,
            sqlite_index,
        })
    }
}

/// How the declaration `given` differs from `registered` (the same index's row in the registry) in what
/// SQLite's structures depend on, field by field, as `metric l2 (registered: cosine)`; empty when it does
/// not (PostgreSQL's index is its own: a search there reads it only when its SQL matches).
#[cfg(feature = "sqlite")]
pub(crate) fn differences(given: &IndexSpec, registered: &IndexSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, given: String, registered: String| {
        if given != registered {
            out.push(format!("{name} {given} (registered: {registered})"));
        }
    };
    field("table", given.table().to_owned(), registered.table().to_owned());
    field("column", given.column().to_owned(), registered.column().to_owned());
    field("id column", given.id_column().to_owned(), registered.id_column().to_owned());
    field("type", given.element().name().to_owned(), registered.element().name().to_owned());
    field("dimensions", given.dims().to_string(), registered.dims().to_string());
    field("metric", given.metric().to_string(), registered.metric().to_string());
    let partitions = |s: &IndexSpec| format!("[{}]", s.partition_by().collect::<Vec<_>>().join(", "));
    field("partition_by", partitions(given), partitions(registered));
    field("SQLite structures", given.sqlite_index().name().to_owned(), registered.sqlite_index().name().to_owned());
    out
}

/// Whether the crate's quantized codes can index a column of `element` under `metric`.
pub(crate) fn codes_fit(element: Element, metric: Metric) -> bool {
    matches!(element, Element::Vector | Element::HalfVector) && crate::ann::supports(metric)
}

/// Checks that pgvector can build `index` for the column; returns the type to cast to in an expression
/// index (`vector` above 2000 dimensions is indexed as `halfvec`, up to 4000).
fn check_pg_index(index: PgIndex, element: Element, metric: Metric, dims: u32) -> Result<Option<Element>, SpecError> {
    if index == PgIndex::None {
        return Ok(None);
    }
    let unsupported = |hint| Err(SpecError::PgIndexUnsupported { index, element, metric, hint });
    if index == PgIndex::BinaryQuantized {
        // `binary_quantize` takes `vector` (and `halfvec`, which this crate does not quantize); the bit
        // index takes up to 64000 bits, more than a `vector` has.
        return if element == Element::Vector { Ok(None) } else { unsupported("use an hnsw index") };
    }
    if index == PgIndex::Ivfflat {
        if element == Element::SparseVector {
            return unsupported("use an hnsw index");
        }
        if metric == Metric::L1 || metric == Metric::Jaccard {
            return unsupported("use an hnsw index, which supports it");
        }
    }
    let Some(max) = element.max_index_dims() else { return Ok(None) };
    if dims <= max {
        return Ok(None);
    }
    if element == Element::Vector && dims <= 4000 {
        // pgvector indexes `vector` up to 2000 dimensions and `halfvec` up to 4000: an expression index on
        // the column cast to halfvec serves searches that cast the same way.
        return Ok(Some(Element::HalfVector));
    }
    Err(SpecError::PgIndexDimensions {
        index,
        element,
        dims,
        max: if element == Element::Vector { 4000 } else { max },
        hint: "store fewer dimensions (a model's shortened embedding), or declare no PostgreSQL index (exact search)",
    })
}

fn check_vec0(element: Element, metric: Metric, dims: u32) -> Result<(), SpecError> {
    let reason = if element == Element::Bit && metric == Metric::Hamming && dims <= 8192 {
        // sqlite-vec's `bit[N]`.
        return Ok(());
    } else if element == Element::Bit {
        format!("it has bit vectors of at most 8192 bits with the hamming metric only ({metric}, {dims} bits given)")
    } else if element != Element::Vector {
        format!("it has no `{element}` vectors")
    } else if !matches!(metric, Metric::Cosine | Metric::L2 | Metric::L1) {
        format!("it has no {metric} metric (only cosine, l2 and l1)")
    } else if dims > 8192 {
        format!("it takes at most 8192 dimensions ({dims} given)")
    } else {
        return Ok(());
    };
    Err(SpecError::Vec0Unsupported { reason })
}

/// `name` as an identifier, shortened to PostgreSQL's limit with a hash of the whole when too long (so
/// that two long names that share a prefix stay different).
fn bounded(name: &str) -> Ident {
    let clean: String = name.chars().map(|c| if c.is_control() { '_' } else { c }).collect();
    if clean.len() <= MAX_IDENT_BYTES {
        return Ident::new(&clean, "name").unwrap_or_else(|_| unreachable!("checked above"));
    }
    let hash = crate::index::fnv1a(clean.as_bytes());
    let mut cut = MAX_IDENT_BYTES - 9;
    while !clean.is_char_boundary(cut) {
        cut -= 1;
    }
    let short = format!("{}_{:08x}", &clean[..cut], hash >> 32);
    Ident::new(&short, "name").unwrap_or_else(|_| unreachable!("short enough"))
}

impl IndexSpec {
    /// Starts a declaration of an index on `table.column` of `dims` dimensions; everything else has a
    /// default (see [`IndexSpecBuilder`]).
    pub fn builder(table: impl Into<String>, column: impl Into<String>, dims: u64) -> IndexSpecBuilder {
        IndexSpecBuilder {
            table: table.into(),
            column: column.into(),
            dims,
            name: None,
            id_column: "id".to_owned(),
            element: Element::Vector,
            metric: None,
            partition_by: Vec::new(),
            pg_index: PgIndex::default(),
            pg_index_name: None,
            sqlite_index: None,
        }
    }

    /// The index's name: the registry's key, and the stem of its SQLite structures' names.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The table.
    pub fn table(&self) -> &str {
        self.table.as_str()
    }

    /// The primary-key column.
    pub fn id_column(&self) -> &str {
        self.id_column.as_str()
    }

    /// The vector column.
    pub fn column(&self) -> &str {
        self.column.as_str()
    }

    /// The column's type.
    pub fn element(&self) -> Element {
        self.element
    }

    /// The column's dimensions.
    pub fn dims(&self) -> u32 {
        self.dims
    }

    /// The metric the index is built for, and searches use by default.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The columns a search may filter on by equality.
    pub fn partition_by(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.partition_by.iter().map(Ident::as_str)
    }

    /// PostgreSQL's index kind.
    pub fn pg_index(&self) -> PgIndex {
        self.pg_index
    }

    /// PostgreSQL's index name, `None` without an index.
    pub fn pg_index_name(&self) -> Option<&str> {
        self.pg_index_name.as_ref().map(Ident::as_str)
    }

    /// The type PostgreSQL's index casts the column to (`halfvec` for a `vector` of 2001 to 4000
    /// dimensions), `None` when it indexes the column as it is.
    pub fn pg_cast(&self) -> Option<Element> {
        self.pg_cast
    }

    /// The structures SQLite keeps.
    pub fn sqlite_index(&self) -> SqliteIndex {
        self.sqlite_index
    }

    /// Whether SQLite keeps the crate's quantized codes for this index: its structures include `codes`, and
    /// codes can index its column (`vector` and `halfvec` columns under cosine, L2, L1 or the inner
    /// product). Other indexes are searched through vec0 where they keep one, or exactly.
    pub fn sqlite_keeps_codes(&self) -> bool {
        self.sqlite_index.codes && codes_fit(self.element, self.metric)
    }

    /// Whether SQLite keeps any structure for this index (codes or vec0). An index that keeps none is
    /// searched by scanning the table, and its migration queues no changes.
    pub fn sqlite_keeps_a_structure(&self) -> bool {
        self.sqlite_keeps_codes() || self.sqlite_index.vec0
    }

    /// SQLite: the change queue the triggers fill (`<name>_queue`).
    pub fn queue_table(&self) -> String {
        format!("{}_queue", self.name)
    }

    /// SQLite: the index's one-row state (`<name>_state`: rebuild flag and generation).
    pub fn state_table(&self) -> String {
        format!("{}_state", self.name)
    }

    /// SQLite: the quantized codes (`<name>_codes`), made by the crate when it first builds them.
    pub fn codes_table(&self) -> String {
        format!("{}_codes", self.name)
    }

    /// SQLite: the contiguous copy of the vectors (`<name>_vectors`), made by the crate when the index keeps
    /// it ([`SqliteIndex::vectors`]).
    pub fn vectors_table(&self) -> String {
        format!("{}_vectors", self.name)
    }

    /// SQLite: sqlite-vec's `vec0` table, named as the index.
    pub fn vec0_table(&self) -> &str {
        self.name.as_str()
    }

    /// SQLite: the triggers that fill the queue (`<name>_insert`, `<name>_update`, `<name>_delete`).
    pub fn queue_triggers(&self) -> [String; 3] {
        ["insert", "update", "delete"].map(|event| format!("{}_{event}", self.name))
    }

    /// Every SQLite table the index owns besides the base table: they are the crate's, never the
    /// application's data (a copy leaves them out; `vec0`'s own shadow tables included by prefix).
    pub fn sqlite_internal_tables(&self) -> [String; 5] {
        [self.queue_table(), self.state_table(), self.codes_table(), self.vectors_table(), self.vec0_table().to_owned()]
    }

    /// The columns the index reads (the id, the vector and the partition columns) that `exists` says the
    /// table lacks: renamed or dropped since the index's migration ran.
    #[cfg(any(feature = "pg", feature = "sqlite"))]
    pub(crate) fn columns_missing(&self, exists: impl Fn(&str) -> bool) -> Vec<String> {
        [self.id_column(), self.column()]
            .into_iter()
            .chain(self.partition_by())
            .filter(|c| !exists(c))
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(b: IndexSpecBuilder) -> Result<IndexSpec, String> {
        b.build().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_the_element() {
        let spec = IndexSpec::builder("documents", "embedding", 768).build().unwrap();
        assert_eq!(
            (spec.metric(), spec.pg_index(), spec.sqlite_index()),
            (Metric::Cosine, PgIndex::Hnsw, SqliteIndex::CODES)
        );
        assert_eq!(spec.id_column(), "id");
        assert_eq!(
            spec.queue_triggers(),
            ["__dv_documents_embedding_insert", "__dv_documents_embedding_update", "__dv_documents_embedding_delete"]
        );
        let bits = IndexSpec::builder("d", "b", 64).element(Element::Bit).build().unwrap();
        assert_eq!(bits.metric(), Metric::Hamming);
        assert_eq!(bits.pg_index_name(), Some("d_b_hamming_idx"));
        assert_eq!(bits.sqlite_index(), SqliteIndex::NONE, "codes index vector and halfvec columns only");
        let sparse = IndexSpec::builder("d", "s", 30_000).element(Element::SparseVector).build().unwrap();
        assert_eq!(sparse.sqlite_index(), SqliteIndex::NONE);
        assert!(!bits.sqlite_keeps_a_structure() && !sparse.sqlite_keeps_a_structure());
        let bits_codes = IndexSpec::builder("d", "b", 64).element(Element::Bit).sqlite_index(SqliteIndex::CODES);
        assert_eq!(
            build(bits_codes).unwrap_err(),
            "the SQLite structure `codes` indexes `vector` and `halfvec` columns, not a `bit` column: keep `vec0` \
             (sqlite-vec's bit vectors) or `none` (searches then scan every row exactly)"
        );
        let sparse_codes =
            IndexSpec::builder("d", "s", 9).element(Element::SparseVector).sqlite_index(SqliteIndex::CODES_AND_VECTORS);
        assert!(build(sparse_codes).unwrap_err().contains("not a `sparsevec` column: keep `none`"));
        let bits_vec0 = IndexSpec::builder("d", "b", 64).element(Element::Bit).sqlite_index(SqliteIndex::VEC0);
        assert!(bits_vec0.build().unwrap().sqlite_keeps_a_structure());
    }

    #[test]
    fn dimensions_must_fit_the_type() {
        assert_eq!(
            build(IndexSpec::builder("t", "v", 0)).unwrap_err(),
            "0 dimensions for a `vector` column: expected 1 to 16000"
        );
        assert!(build(IndexSpec::builder("t", "v", 16_001).pg_index(PgIndex::None)).is_err());
        assert!(build(IndexSpec::builder("t", "v", 16_000).pg_index(PgIndex::None)).is_ok());
        assert!(build(IndexSpec::builder("t", "v", u64::MAX)).unwrap_err().contains("18446744073709551615 dimensions"));
        assert!(build(IndexSpec::builder("t", "b", 12).element(Element::Bit)).unwrap_err().contains("multiple of 8"));
    }

    #[test]
    fn metrics_must_apply_to_the_type() {
        let err = build(IndexSpec::builder("t", "v", 3).metric(Metric::Hamming)).unwrap_err();
        assert_eq!(
            err,
            "the hamming metric does not apply to `vector` columns: use one of cosine, l2, l1, inner_product"
        );
        assert!(build(IndexSpec::builder("t", "b", 8).element(Element::Bit).metric(Metric::L2)).is_err());
        assert_eq!("inner-product".parse::<Metric>().unwrap(), Metric::InnerProduct);
        assert!("dot".parse::<Metric>().unwrap_err().to_string().contains("expected one of cosine"));
    }

    #[test]
    fn binary_quantization_indexes_vector_columns_of_any_size() {
        let spec = IndexSpec::builder("t", "v", 16_000).pg_index(PgIndex::BinaryQuantized).build().unwrap();
        assert_eq!(spec.pg_cast(), None);
        assert_eq!(spec.pg_index_name(), Some("t_v_bq_idx"));
        let err =
            build(IndexSpec::builder("t", "h", 64).element(Element::HalfVector).pg_index(PgIndex::BinaryQuantized))
                .unwrap_err();
        assert!(err.contains("use an hnsw index"), "{err}");
        assert_eq!("binary-quantized".parse::<PgIndex>(), Ok(PgIndex::BinaryQuantized));
        assert_eq!(PgIndex::BinaryQuantized.name().parse::<PgIndex>(), Ok(PgIndex::BinaryQuantized));
        assert_eq!(PgIndex::BinaryQuantized.method(), Some("hnsw"));
    }

    #[test]
    fn pgvector_index_limits_are_checked() {
        let spec = IndexSpec::builder("t", "v", 3072).build().unwrap();
        assert_eq!(spec.pg_cast(), Some(Element::HalfVector), "vector above 2000 dims is indexed as halfvec");
        let err = build(IndexSpec::builder("t", "v", 4001)).unwrap_err();
        assert!(
            err.starts_with("pgvector's hnsw index takes at most 4000 dimensions of `vector` (4001 given)"),
            "{err}"
        );
        assert!(build(IndexSpec::builder("t", "v", 4001).pg_index(PgIndex::None)).is_ok());
        assert!(build(IndexSpec::builder("t", "v", 4001).element(Element::HalfVector)).is_err());
        let err = build(IndexSpec::builder("t", "v", 3).metric(Metric::L1).pg_index(PgIndex::Ivfflat)).unwrap_err();
        assert_eq!(
            err,
            "pgvector has no ivfflat index for l1 on `vector` columns: use an hnsw index, which supports it"
        );
        assert!(
            build(IndexSpec::builder("t", "s", 9).element(Element::SparseVector).pg_index(PgIndex::Ivfflat)).is_err()
        );
    }

    #[test]
    fn vec0_limits_are_checked() {
        let vec0 = |b: IndexSpecBuilder| build(b.sqlite_index(SqliteIndex::VEC0));
        assert!(vec0(IndexSpec::builder("t", "v", 3)).is_ok());
        assert!(vec0(IndexSpec::builder("t", "v", 3).metric(Metric::InnerProduct))
            .unwrap_err()
            .contains("no inner_product metric"));
        assert!(vec0(IndexSpec::builder("t", "v", 9000).pg_index(PgIndex::None)).unwrap_err().contains("8192"));
        assert!(vec0(IndexSpec::builder("t", "v", 8).element(Element::HalfVector)).is_err());
        assert!(vec0(IndexSpec::builder("t", "v", 256).element(Element::Bit)).is_ok(), "sqlite-vec's bit[256]");
        assert!(vec0(IndexSpec::builder("t", "v", 256).element(Element::Bit).metric(Metric::Jaccard)).is_err());
    }

    #[test]
    fn one_column_has_one_role() {
        assert!(build(IndexSpec::builder("t", "v", 3).id_column("v"))
            .unwrap_err()
            .contains("both the id column and the vector column"));
        assert!(build(IndexSpec::builder("t", "v", 3).partition_by(["v"])).unwrap_err().contains("a partition column"));
        assert!(build(IndexSpec::builder("t", "v", 3).partition_by(["a", "a"])).is_err());
        assert!(build(IndexSpec::builder("", "v", 3)).unwrap_err().contains("table is empty"));
    }

    #[test]
    fn long_derived_names_are_shortened_with_a_hash() {
        let (table, column) = ("t".repeat(60), "c".repeat(60));
        let spec = IndexSpec::builder(&table, &column, 3).build().unwrap();
        assert!(spec.name().len() <= MAX_IDENT_BYTES && spec.name().starts_with("__dv_ttt"), "{}", spec.name());
        let other = IndexSpec::builder(&table, format!("{column}x"), 3).build().unwrap();
        assert_ne!(spec.name(), other.name());
        assert!(spec.pg_index_name().unwrap().len() <= MAX_IDENT_BYTES);
        assert!(build(IndexSpec::builder("t", "v", 3).name("n".repeat(64))).unwrap_err().contains("64 bytes long"));
    }

    #[test]
    fn sqlite_index_names_parse() {
        for s in [
            SqliteIndex::CODES,
            SqliteIndex::VEC0,
            SqliteIndex::CODES_AND_VEC0,
            SqliteIndex::CODES_AND_VECTORS,
            SqliteIndex::NONE,
        ] {
            assert_eq!(s.name().parse::<SqliteIndex>().unwrap(), s);
        }
        assert!("codes,none".parse::<SqliteIndex>().is_err());
        assert_eq!("vectors, codes".parse::<SqliteIndex>().unwrap(), SqliteIndex::CODES_AND_VECTORS);
        let only_vectors = IndexSpec::builder("t", "v", 3).sqlite_index("vectors".parse().unwrap()).build();
        assert_eq!(only_vectors.unwrap_err(), SpecError::VectorsWithoutCodes);
        assert!("hnsw".parse::<SqliteIndex>().is_err());
    }
}
