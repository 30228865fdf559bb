//! [`SearchVector`]: the query of a search, a value of any of pgvector's four types, checked against the
//! index's column before anything runs.

use std::borrow::Cow;

use super::{Metric, SearchError};
use crate::index::{Element, IndexSpec};
use crate::{Bit, HalfVector, SparseVector, Vector};

/// The query of a search: a value of the index column's type, borrowed. Every value type converts into
/// it, so `spec.search(&q)` takes a `&Vector`, `&HalfVector`, `&SparseVector` or `&Bit`; a value of
/// another type than the column's is a [`SearchError::QueryType`] when the search runs.
///
/// | column | query |
/// |---|---|
/// | `vector(N)` | [`Vector`] of `N` dimensions |
/// | `halfvec(N)` | [`HalfVector`] of `N` dimensions |
/// | `sparsevec(N)` | [`SparseVector`] of `N` dimensions |
/// | `bit(N)` | [`Bit`] of `N` bits |
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum SearchVector<'a> {
    /// For a `vector` column.
    Vector(&'a Vector),
    /// For a `halfvec` column.
    HalfVector(&'a HalfVector),
    /// For a `sparsevec` column.
    SparseVector(&'a SparseVector),
    /// For a `bit` column.
    Bit(&'a Bit),
}

impl SearchVector<'_> {
    /// The type of the value.
    pub fn element(&self) -> Element {
        match self {
            Self::Vector(_) => Element::Vector,
            Self::HalfVector(_) => Element::HalfVector,
            Self::SparseVector(_) => Element::SparseVector,
            Self::Bit(_) => Element::Bit,
        }
    }

    /// The dimensions (bits, for a [`Bit`]).
    pub fn dims(&self) -> usize {
        match self {
            Self::Vector(v) => v.dims(),
            Self::HalfVector(v) => v.dims(),
            Self::SparseVector(v) => v.dims(),
            Self::Bit(v) => v.len(),
        }
    }
}

impl<'a> From<&'a Vector> for SearchVector<'a> {
    fn from(v: &'a Vector) -> Self {
        Self::Vector(v)
    }
}

impl<'a> From<&'a HalfVector> for SearchVector<'a> {
    fn from(v: &'a HalfVector) -> Self {
        Self::HalfVector(v)
    }
}

impl<'a> From<&'a SparseVector> for SearchVector<'a> {
    fn from(v: &'a SparseVector) -> Self {
        Self::SparseVector(v)
    }
}

impl<'a> From<&'a Bit> for SearchVector<'a> {
    fn from(v: &'a Bit) -> Self {
        Self::Bit(v)
    }
}

/// The query as the backends get it: of the column's type and dimensions, scaled when needed
/// ([`prepare`]).
#[doc(hidden)]
#[derive(Debug, Clone)]
pub enum PlanVector<'a> {
    Vector(Cow<'a, Vector>),
    HalfVector(&'a HalfVector),
    SparseVector(Cow<'a, SparseVector>),
    Bit(&'a Bit),
}

impl PlanVector<'_> {
    /// Borrows the value again (for a plan built from another one).
    #[cfg_attr(not(feature = "pg"), allow(dead_code))]
    pub(crate) fn reborrow(&self) -> PlanVector<'_> {
        match self {
            Self::Vector(v) => PlanVector::Vector(Cow::Borrowed(v.as_ref())),
            Self::HalfVector(v) => PlanVector::HalfVector(v),
            Self::SparseVector(v) => PlanVector::SparseVector(Cow::Borrowed(v.as_ref())),
            Self::Bit(v) => PlanVector::Bit(v),
        }
    }
}

/// A [`PlanVector`] that owns its value, to move a plan to another thread (the SQLite wrapper's blocking
/// call of the async search).
#[cfg(all(feature = "async", feature = "sqlite"))]
#[derive(Debug, Clone)]
pub(crate) enum OwnedPlanVector {
    Vector(Vector),
    HalfVector(HalfVector),
    SparseVector(SparseVector),
    Bit(Bit),
}

#[cfg(all(feature = "async", feature = "sqlite"))]
impl OwnedPlanVector {
    pub(crate) fn new(query: &PlanVector<'_>) -> Self {
        match query {
            PlanVector::Vector(v) => Self::Vector(v.as_ref().clone()),
            PlanVector::HalfVector(v) => Self::HalfVector((*v).clone()),
            PlanVector::SparseVector(v) => Self::SparseVector(v.as_ref().clone()),
            PlanVector::Bit(v) => Self::Bit((*v).clone()),
        }
    }

    pub(crate) fn plan_vector(&self) -> PlanVector<'_> {
        match self {
            Self::Vector(v) => PlanVector::Vector(Cow::Borrowed(v)),
            Self::HalfVector(v) => PlanVector::HalfVector(v),
            Self::SparseVector(v) => PlanVector::SparseVector(Cow::Borrowed(v)),
            Self::Bit(v) => PlanVector::Bit(v),
        }
    }
}

/// Checks `query` against `spec`'s column (type, then dimensions) and `metric`, and prepares it.
pub(crate) fn prepare<'a>(
    spec: &IndexSpec,
    query: SearchVector<'a>,
    metric: Metric,
) -> Result<PlanVector<'a>, SearchError> {
    if query.element() != spec.element() {
        return Err(SearchError::QueryType { expected: spec.element(), found: query.element() });
    }
    let dims = spec.dims() as usize;
    Ok(match query {
        SearchVector::Vector(v) => {
            v.check_dims(dims).map_err(SearchError::InvalidQuery)?;
            PlanVector::Vector(super::prepare_query(v, metric)?)
        }
        SearchVector::HalfVector(v) => {
            v.check_dims(dims).map_err(SearchError::InvalidQuery)?;
            // f16 values are at most 65504: sums over 16000 of them stay far inside f32's range.
            if metric == Metric::Cosine && v.as_slice().iter().all(|x| f32::from(*x) == 0.0) {
                return Err(SearchError::ZeroQuery);
            }
            PlanVector::HalfVector(v)
        }
        SearchVector::SparseVector(v) => {
            v.check_dims(dims).map_err(SearchError::InvalidQuery)?;
            PlanVector::SparseVector(prepare_sparse(v, metric)?)
        }
        SearchVector::Bit(v) => {
            v.check_len(dims).map_err(SearchError::InvalidQuery)?;
            PlanVector::Bit(v)
        }
    })
}

/// The sparse query as [`super::prepare_query`] treats a dense one: a zero vector has no cosine distance,
/// values too large for `f32` sums are scaled by a power of two under cosine and refused otherwise.
fn prepare_sparse(query: &SparseVector, metric: Metric) -> Result<Cow<'_, SparseVector>, SearchError> {
    let values = query.values();
    if metric == Metric::Cosine && values.is_empty() {
        return Err(SearchError::ZeroQuery);
    }
    let squares: f64 = values.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
    let magnitude = if metric == Metric::L1 { values.iter().map(|x| f64::from(x.abs())).sum() } else { squares };
    if magnitude <= super::F32_HEADROOM {
        return Ok(Cow::Borrowed(query));
    }
    if metric != Metric::Cosine {
        return Err(SearchError::QueryOverflow { metric });
    }
    let dense = Vector::new(values.to_vec()).map_err(SearchError::InvalidQuery)?;
    let scaled = super::prepare_query(&dense, metric)?;
    let scaled = SparseVector::new(query.dimensions(), query.indices().to_vec(), scaled.as_slice().to_vec())
        .map_err(SearchError::InvalidQuery)?;
    if scaled.values().is_empty() {
        return Err(SearchError::ZeroQuery);
    }
    Ok(Cow::Owned(scaled))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(element: Element, dims: u64) -> IndexSpec {
        IndexSpec::builder("images", "v", dims).element(element).build().unwrap()
    }

    #[test]
    fn a_query_of_another_type_or_size_is_refused() {
        let bits = Bit::new(&[true; 16]);
        let half = HalfVector::from_f32_slice(&[1.0; 16]).unwrap();
        let err = prepare(&spec(Element::HalfVector, 16), (&bits).into(), Metric::Cosine).unwrap_err();
        assert!(matches!(err, SearchError::QueryType { expected: Element::HalfVector, found: Element::Bit }), "{err}");
        assert!(matches!(
            prepare(&spec(Element::Bit, 8), (&bits).into(), Metric::Hamming),
            Err(SearchError::InvalidQuery(_))
        ));
        assert!(prepare(&spec(Element::HalfVector, 16), (&half).into(), Metric::Cosine).is_ok());
        let zero = HalfVector::from_f32_slice(&[0.0; 16]).unwrap();
        assert!(matches!(
            prepare(&spec(Element::HalfVector, 16), (&zero).into(), Metric::Cosine),
            Err(SearchError::ZeroQuery)
        ));
    }

    #[test]
    fn large_sparse_queries_are_scaled_under_cosine_and_refused_otherwise() {
        let huge = SparseVector::new(100, vec![3, 50], vec![3.0e38, -1.0e38]).unwrap();
        let PlanVector::SparseVector(scaled) =
            prepare(&spec(Element::SparseVector, 100), (&huge).into(), Metric::Cosine).unwrap()
        else {
            unreachable!()
        };
        assert_eq!(scaled.indices(), [3, 50]);
        assert!(scaled.values().iter().map(|x| x * x).sum::<f32>() <= 1.0);
        assert_eq!(scaled.values()[0] / scaled.values()[1], -3.0);
        assert!(matches!(
            prepare(&spec(Element::SparseVector, 100), (&huge).into(), Metric::L2),
            Err(SearchError::QueryOverflow { .. })
        ));
        let empty = SparseVector::new(100, vec![], vec![]).unwrap();
        assert!(matches!(
            prepare(&spec(Element::SparseVector, 100), (&empty).into(), Metric::Cosine),
            Err(SearchError::ZeroQuery)
        ));
    }
}
