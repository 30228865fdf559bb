//! How SQLite renders the distance DSL: sqlite-vec's functions, and the crate's own for the inner
//! product.

use diesel::expression::Expression;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::sqlite::Sqlite;
use diesel::QueryResult;

use crate::dsl::{metric, Distance, VectorOrNullableVector};

/// The SQL function that computes a metric on SQLite. sqlite-vec provides the first three (and the
/// crate registers Rust versions when it is absent); the inner product is always the crate's.
pub(crate) trait SqliteFunction {
    /// The function's SQL name.
    const FUNCTION: &'static str;
}

impl SqliteFunction for metric::L2 {
    const FUNCTION: &'static str = "vec_distance_l2";
}

impl SqliteFunction for metric::Cosine {
    const FUNCTION: &'static str = "vec_distance_cosine";
}

impl SqliteFunction for metric::L1 {
    const FUNCTION: &'static str = "vec_distance_l1";
}

impl SqliteFunction for metric::MaxInnerProduct {
    const FUNCTION: &'static str = "diesel_vector_neg_inner_product";
}

/// `function(left, right)`. sqlite-vec's functions fail on NULL ("Input must have type BLOB ... found
/// NULL"), so a nullable side is guarded: `CASE WHEN left IS NOT NULL THEN function(left, right) END`,
/// which is NULL, like pgvector's strict operators, when the guard fails.
impl<M, L, R> QueryFragment<Sqlite> for Distance<M, L, R>
where
    M: SqliteFunction,
    L: Expression + QueryFragment<Sqlite>,
    R: Expression + QueryFragment<Sqlite>,
    L::SqlType: VectorOrNullableVector,
    R::SqlType: VectorOrNullableVector,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
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
        out.push_sql(M::FUNCTION);
        out.push_sql("(");
        self.left.walk_ast(out.reborrow())?;
        out.push_sql(", ");
        self.right.walk_ast(out.reborrow())?;
        out.push_sql(")");
        if guard_left || guard_right {
            out.push_sql(" END");
        }
        Ok(())
    }
}
