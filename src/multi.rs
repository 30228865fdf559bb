//! Support for `#[derive(diesel::MultiConnection)]` enums.

/// Implements what the vector types ([`Vector`](crate::Vector), [`HalfVector`](crate::HalfVector),
/// [`SparseVector`](crate::SparseVector), [`Bit`](crate::Bit)) need on the `MultiBackend` that
/// `#[derive(diesel::MultiConnection)]` generates, so their columns and the [distance DSL](crate::dsl)
/// work through such an enum.
///
/// Invoke it once, in the module that holds the enum, with the path of the generated `MultiBackend`
/// type (the derive re-exports it beside the enum). A library cannot write these impls itself: the
/// `MultiBackend` type belongs to your crate.
///
/// ```
/// # #[cfg(all(feature = "pg", feature = "sqlite"))] mod demo {
/// #[derive(diesel::MultiConnection)]
/// pub enum AnyConnection {
///     Postgresql(diesel::PgConnection),
///     Sqlite(diesel::SqliteConnection),
/// }
///
/// diesel_vector::multi_connection_support!(MultiBackend);
///
/// diesel::table! {
///     use diesel::sql_types::*;
///     use diesel_vector::sql_types::Vector;
///
///     items (id) {
///         id -> Integer,
///         embedding -> Vector,
///     }
/// }
///
/// pub fn nearest(conn: &mut AnyConnection, q: &diesel_vector::Vector) -> diesel::QueryResult<Vec<i32>> {
///     use diesel::prelude::*;
///     use diesel_vector::VectorExpressionMethods;
///
///     items::table.select(items::id).order(items::embedding.cosine_distance(q)).limit(5).load(conn)
/// }
/// # }
/// ```
#[macro_export]
macro_rules! multi_connection_support {
    ($backend:path) => {
        $crate::__multi_connection_type!($backend, $crate::sql_types::Vector, $crate::Vector);
        $crate::__multi_connection_type!($backend, $crate::sql_types::HalfVector, $crate::HalfVector);
        $crate::__multi_connection_type!($backend, $crate::sql_types::SparseVector, $crate::SparseVector);
        $crate::__multi_connection_type!($backend, $crate::sql_types::Bit, $crate::Bit);
        $crate::__multi_connection_distance!($backend);
    };
}

/// The three impls one vector type needs on a `MultiBackend`.
#[doc(hidden)]
#[macro_export]
macro_rules! __multi_connection_type {
    ($backend:path, $sql_type:ty, $rust_type:ty) => {
        impl $crate::__private::diesel::sql_types::HasSqlType<$sql_type> for $backend {
            fn metadata(lookup: &mut Self::MetadataLookup) -> Self::TypeMetadata {
                <$backend>::lookup_sql_type::<$sql_type>(lookup)
            }
        }

        impl $crate::__private::diesel::deserialize::FromSql<$sql_type, $backend> for $rust_type {
            fn from_sql(
                bytes: <$backend as $crate::__private::diesel::backend::Backend>::RawValue<'_>,
            ) -> $crate::__private::diesel::deserialize::Result<Self> {
                bytes.from_sql::<Self, $sql_type>()
            }
        }

        impl $crate::__private::diesel::serialize::ToSql<$sql_type, $backend> for $rust_type {
            fn to_sql<'b>(
                &'b self,
                out: &mut $crate::__private::diesel::serialize::Output<'b, '_, $backend>,
            ) -> $crate::__private::diesel::serialize::Result {
                out.set_value((<$sql_type as ::std::default::Default>::default(), self));
                ::std::result::Result::Ok($crate::__private::diesel::serialize::IsNull::No)
            }
        }
    };
}

// `QueryFragment<MultiBackend>` for the distance node goes through `MultiBackend::walk_variant_ast`,
// which needs the node to be a `QueryFragment` of every backend in the enum. A generic impl must say so
// in its where clause, naming those backends, which the macro cannot see. They are among the backends
// this build of the crate supports (a vector column works through no other), so the bound names the
// backends of the enabled features: a superset of what `walk_variant_ast` asks for.

#[doc(hidden)]
#[macro_export]
macro_rules! __multi_connection_distance_impl {
    ($backend:path, $($inner:ty),+) => {
        impl<M, L, R> $crate::__private::diesel::query_builder::QueryFragment<$backend>
            for $crate::dsl::Distance<M, L, R>
        where
            $(Self: $crate::__private::diesel::query_builder::QueryFragment<$inner>,)+
        {
            fn walk_ast<'b>(
                &'b self,
                pass: $crate::__private::diesel::query_builder::AstPass<'_, 'b, $backend>,
            ) -> $crate::__private::diesel::QueryResult<()> {
                <$backend>::walk_variant_ast(self, pass)
            }
        }
    };
}

#[cfg(all(feature = "pg", feature = "sqlite"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __multi_connection_distance {
    ($backend:path) => {
        $crate::__multi_connection_distance_impl!(
            $backend,
            $crate::__private::diesel::pg::Pg,
            $crate::__private::diesel::sqlite::Sqlite
        );
    };
}

#[cfg(all(feature = "pg", not(feature = "sqlite")))]
#[doc(hidden)]
#[macro_export]
macro_rules! __multi_connection_distance {
    ($backend:path) => {
        $crate::__multi_connection_distance_impl!($backend, $crate::__private::diesel::pg::Pg);
    };
}

#[cfg(all(feature = "sqlite", not(feature = "pg")))]
#[doc(hidden)]
#[macro_export]
macro_rules! __multi_connection_distance {
    ($backend:path) => {
        $crate::__multi_connection_distance_impl!($backend, $crate::__private::diesel::sqlite::Sqlite);
    };
}

#[cfg(not(any(feature = "pg", feature = "sqlite")))]
#[doc(hidden)]
#[macro_export]
macro_rules! __multi_connection_distance {
    ($backend:path) => {};
}
