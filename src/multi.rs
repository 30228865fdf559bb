//! Support for `#[derive(diesel::MultiConnection)]` enums.

/// Implements what [`Vector`](crate::Vector) needs on the `MultiBackend` that
/// `#[derive(diesel::MultiConnection)]` generates, so vector columns work through such an enum.
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
/// # }
/// ```
#[macro_export]
macro_rules! multi_connection_support {
    ($backend:path) => {
        impl $crate::__private::diesel::sql_types::HasSqlType<$crate::sql_types::Vector> for $backend {
            fn metadata(lookup: &mut Self::MetadataLookup) -> Self::TypeMetadata {
                <$backend>::lookup_sql_type::<$crate::sql_types::Vector>(lookup)
            }
        }

        impl $crate::__private::diesel::deserialize::FromSql<$crate::sql_types::Vector, $backend> for $crate::Vector {
            fn from_sql(
                bytes: <$backend as $crate::__private::diesel::backend::Backend>::RawValue<'_>,
            ) -> $crate::__private::diesel::deserialize::Result<Self> {
                bytes.from_sql::<Self, $crate::sql_types::Vector>()
            }
        }

        impl $crate::__private::diesel::serialize::ToSql<$crate::sql_types::Vector, $backend> for $crate::Vector {
            fn to_sql<'b>(
                &'b self,
                out: &mut $crate::__private::diesel::serialize::Output<'b, '_, $backend>,
            ) -> $crate::__private::diesel::serialize::Result {
                out.set_value(($crate::sql_types::Vector, self));
                ::std::result::Result::Ok($crate::__private::diesel::serialize::IsNull::No)
            }
        }
    };
}
