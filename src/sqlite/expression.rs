//! How SQLite renders the distance DSL: sqlite-vec's functions for `Vector` (and for the Hamming distance
//! of `Bit`), the crate's own for the rest.

use diesel::expression::Expression;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::sqlite::Sqlite;
use diesel::QueryResult;

use crate::dsl::{metric, Distance, VectorOrNullableVector};
use crate::sql_types;

/// The SQL function that computes metric `M` between two values of this vector SQL type on SQLite.
pub(crate) trait SqliteDistance<M> {
    /// The function's SQL name.
    const FUNCTION: &'static str;
    /// A function each argument is wrapped in: `vec_bit`, which tells sqlite-vec that a BLOB holds bits.
    const ARGUMENT_WRAPPER: Option<&'static str> = None;
}

macro_rules! sqlite_distances {
    ($($sql_type:ty, $metric:ty => $function:literal $(, wrapped in $wrapper:literal)?;)*) => {$(
        impl SqliteDistance<$metric> for $sql_type {
            const FUNCTION: &'static str = $function;
            $(const ARGUMENT_WRAPPER: Option<&'static str> = Some($wrapper);)?
        }
    )*};
}

sqlite_distances! {
    // sqlite-vec's, or the crate's stand-ins when it is not loaded; it has no inner product.
    sql_types::Vector, metric::L2 => "vec_distance_l2";
    sql_types::Vector, metric::Cosine => "vec_distance_cosine";
    sql_types::Vector, metric::L1 => "vec_distance_l1";
    sql_types::Vector, metric::MaxInnerProduct => "diesel_vector_neg_inner_product";
    sql_types::HalfVector, metric::L2 => "diesel_vector_halfvec_l2_distance";
    sql_types::HalfVector, metric::Cosine => "diesel_vector_halfvec_cosine_distance";
    sql_types::HalfVector, metric::L1 => "diesel_vector_halfvec_l1_distance";
    sql_types::HalfVector, metric::MaxInnerProduct => "diesel_vector_halfvec_neg_inner_product";
    sql_types::SparseVector, metric::L2 => "diesel_vector_sparsevec_l2_distance";
    sql_types::SparseVector, metric::Cosine => "diesel_vector_sparsevec_cosine_distance";
    sql_types::SparseVector, metric::L1 => "diesel_vector_sparsevec_l1_distance";
    sql_types::SparseVector, metric::MaxInnerProduct => "diesel_vector_sparsevec_neg_inner_product";
    // sqlite-vec reads a plain BLOB as f32: `vec_bit` marks it as bits.
    sql_types::Bit, metric::Hamming => "vec_distance_hamming", wrapped in "vec_bit";
    sql_types::Bit, metric::Jaccard => "diesel_vector_bit_jaccard_distance";
}

/// `function(left, right)`, each argument wrapped in the type's wrapper if it has one. sqlite-vec's
/// functions fail on NULL ("Input must have type BLOB ... found NULL"), so a nullable side is guarded:
/// `CASE WHEN left IS NOT NULL THEN function(left, right) END`, which is NULL, like pgvector's strict
/// operators, when the guard fails.
impl<M, L, R> QueryFragment<Sqlite> for Distance<M, L, R>
where
    L: Expression + QueryFragment<Sqlite>,
    R: Expression + QueryFragment<Sqlite>,
    L::SqlType: VectorOrNullableVector,
    R::SqlType: VectorOrNullableVector,
    <L::SqlType as VectorOrNullableVector>::Base: SqliteDistance<M>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        type Base<L> = <<L as Expression>::SqlType as VectorOrNullableVector>::Base;
        let function = <Base<L> as SqliteDistance<M>>::FUNCTION;
        let wrapper = <Base<L> as SqliteDistance<M>>::ARGUMENT_WRAPPER;
        let guard_left = <L::SqlType as VectorOrNullableVector>::IS_NULLABLE;
        let guard_right = <R::SqlType as VectorOrNullableVector>::IS_NULLABLE;
        if guard_left || guard_right {
            out.push_sql("CASE WHEN ");
            if guard_left {
                self.left.walk_ast(out.reborrow())?;
                out.push_sql(" IS NOT NULL");
            }
            if guard_left && guard_right {
                out.push_sql(" AND ");
            }
            if guard_right {
                self.right.walk_ast(out.reborrow())?;
                out.push_sql(" IS NOT NULL");
            }
            out.push_sql(" THEN ");
        }
        out.push_sql(function);
        out.push_sql("(");
        argument(&self.left, wrapper, out.reborrow())?;
        out.push_sql(", ");
        argument(&self.right, wrapper, out.reborrow())?;
        out.push_sql(")");
        if guard_left || guard_right {
            out.push_sql(" END");
        }
        Ok(())
    }
}

/// `expression`, or `wrapper(expression)`.
fn argument<'b, E: QueryFragment<Sqlite>>(
    expression: &'b E,
    wrapper: Option<&'static str>,
    mut out: AstPass<'_, 'b, Sqlite>,
) -> QueryResult<()> {
    if let Some(wrapper) = wrapper {
        out.push_sql(wrapper);
        out.push_sql("(");
        expression.walk_ast(out.reborrow())?;
        out.push_sql(")");
    } else {
        expression.walk_ast(out.reborrow())?;
    }
    Ok(())
}
