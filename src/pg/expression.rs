//! How PostgreSQL renders the distance DSL: pgvector's operators, the same for every vector type (pgvector
//! defines each for `vector`, `halfvec` and `sparsevec`, or for `bit`).

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::QueryResult;

use crate::dsl::{metric, Distance};

/// pgvector's operator for a metric.
pub(crate) trait PgOperator {
    /// The operator with the spaces around it, e.g. `" <=> "`.
    const OPERATOR: &'static str;
}

impl PgOperator for metric::L2 {
    const OPERATOR: &'static str = " <-> ";
}

impl PgOperator for metric::Cosine {
    const OPERATOR: &'static str = " <=> ";
}

impl PgOperator for metric::L1 {
    const OPERATOR: &'static str = " <+> ";
}

impl PgOperator for metric::MaxInnerProduct {
    const OPERATOR: &'static str = " <#> ";
}

impl PgOperator for metric::Hamming {
    const OPERATOR: &'static str = " <~> ";
}

impl PgOperator for metric::Jaccard {
    const OPERATOR: &'static str = " <%> ";
}

/// `(left <op> right)`. The parentheses keep the operator's precedence out of the surrounding SQL;
/// the planner sees the same expression as without them, so `ORDER BY` can still use an HNSW or IVFFlat
/// index.
impl<M, L, R> QueryFragment<Pg> for Distance<M, L, R>
where
    M: PgOperator,
    L: QueryFragment<Pg>,
    R: QueryFragment<Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("(");
        self.left.walk_ast(out.reborrow())?;
        out.push_sql(M::OPERATOR);
        self.right.walk_ast(out.reborrow())?;
        out.push_sql(")");
        Ok(())
    }
}
