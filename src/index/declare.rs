//! Declaring an index from Rust, checked against the application's `table!`: [`VectorIndex`] and the
//! [`vector_index!`](crate::vector_index) macro.

use std::marker::PhantomData;
use std::sync::LazyLock;

use diesel::sql_types::{BigInt, Integer, SmallInt};

use super::{IndexSpec, SpecError};

type Declared = Result<IndexSpec, SpecError>;

/// A vector index declared in Rust for the table `T` (the `table` type of a `table!` module), usually
/// through [`vector_index!`](crate::vector_index), which checks at compile time that the columns belong
/// to the table and have the right SQL types.
///
/// It is the same [`IndexSpec`] a generated migration records in the registry; searches on `T` take it.
pub struct VectorIndex<T> {
    spec: LazyLock<Declared, fn() -> Declared>,
    table: PhantomData<fn() -> T>,
}

impl<T> VectorIndex<T> {
    /// An index whose spec `build` makes on first use. [`vector_index!`](crate::vector_index) writes this
    /// call.
    pub const fn new(build: fn() -> Declared) -> Self {
        Self { spec: LazyLock::new(build), table: PhantomData }
    }

    /// The spec, or why the declaration is not valid (a name longer than PostgreSQL keeps, say).
    ///
    /// # Errors
    ///
    /// The [`SpecError`] of the declaration.
    pub fn try_spec(&self) -> Result<&IndexSpec, &SpecError> {
        self.spec.as_ref()
    }

    /// The spec.
    ///
    /// # Panics
    ///
    /// When the declaration is not valid: a programming error in a constant declaration, like an invalid
    /// literal regex, that [`vector_index!`](crate::vector_index) catches at compile time for everything
    /// but the length of names. [`VectorIndex::try_spec`] returns the error instead.
    pub fn spec(&self) -> &IndexSpec {
        match self.spec.as_ref() {
            Ok(spec) => spec,
            Err(e) => panic!("invalid vector index declaration: {e}"),
        }
    }
}

impl<T> std::fmt::Debug for VectorIndex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex").field("spec", &*self.spec).finish()
    }
}

impl<T> std::ops::Deref for VectorIndex<T> {
    type Target = IndexSpec;

    fn deref(&self) -> &IndexSpec {
        self.spec()
    }
}

/// SQL types an index's id column may have: the integers. Sealed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an integer SQL type",
    label = "an index's id column must be an integer (`SmallInt`, `Integer` or `BigInt`) primary key"
)]
pub trait IntegerSqlType: sealed::Sealed {}

impl sealed::Sealed for SmallInt {}
impl IntegerSqlType for SmallInt {}
impl sealed::Sealed for Integer {}
impl IntegerSqlType for Integer {}
impl sealed::Sealed for BigInt {}
impl IntegerSqlType for BigInt {}

mod sealed {
    pub trait Sealed {}
}

/// Compile-time checks the macro calls; not part of the API.
#[doc(hidden)]
pub mod __check {
    use diesel::expression::Expression;

    pub fn vector_column<T, C>() -> crate::VectorKind
    where
        C: diesel::Column<Table = T> + Expression,
        C::SqlType: crate::dsl::VectorOrNullableVector,
    {
        <<C::SqlType as crate::dsl::VectorOrNullableVector>::Base as crate::dsl::VectorSqlType>::KIND
    }

    pub fn id_column<T, C>()
    where
        C: diesel::Column<Table = T> + Expression,
        C::SqlType: super::IntegerSqlType,
    {
    }

    pub fn column<T, C: diesel::Column<Table = T>>() {}

    pub const fn dims_in_range(dims: u64, max: usize) -> bool {
        dims >= 1 && dims <= max as u64
    }
}

/// Declares a vector index on a table of your `schema.rs`, checked at compile time against its
/// `table!`: the columns must belong to the table, the vector column must be of a vector SQL type (its
/// element comes from it), the id column an integer, and the dimensions within the type's range.
///
/// Fields after `column` and `dims` are optional but keep this order: `id` (default `id`), `metric`
/// (an [`index::Metric`](crate::index::Metric) variant), `partition_by` (columns of the table),
/// `pg_index` (a [`PgIndex`](crate::index::PgIndex) variant), `sqlite_index` (an
/// [`SqliteIndex`](crate::index::SqliteIndex) constant), `name`.
///
/// ```
/// diesel::table! {
///     use diesel::sql_types::*;
///     use diesel_vector::sql_types::Vector;
///
///     documents (id) {
///         id -> BigInt,
///         lang -> Text,
///         embedding -> Nullable<Vector>,
///     }
/// }
///
/// diesel_vector::vector_index! {
///     /// The documents' embeddings.
///     pub static DOCUMENTS: documents {
///         column: embedding,
///         dims: 768,
///         metric: L2,
///         partition_by: [lang],
///     }
/// }
///
/// assert_eq!(DOCUMENTS.table(), "documents");
/// assert_eq!(DOCUMENTS.dims(), 768);
/// assert_eq!(DOCUMENTS.partition_by().collect::<Vec<_>>(), ["lang"]);
/// // The migration that creates it, for both backends:
/// let migration = diesel_vector::index::generate::render(&DOCUMENTS, &Default::default());
/// # let _ = migration;
/// ```
///
/// A column of another type does not compile:
///
/// ```compile_fail
/// diesel::table! {
///     documents (id) {
///         id -> BigInt,
///         body -> Text,
///     }
/// }
///
/// diesel_vector::vector_index! {
///     static BAD: documents { column: body, dims: 3 }
/// }
/// ```
#[macro_export]
macro_rules! vector_index {
    (
        $(#[$meta:meta])*
        $vis:vis static $name:ident : $($table:ident)::+ {
            column: $column:ident,
            dims: $dims:expr
            $(, id: $id:ident)?
            $(, metric: $metric:ident)?
            $(, partition_by: [$($partition:ident),* $(,)?])?
            $(, pg_index: $pg_index:ident)?
            $(, sqlite_index: $sqlite_index:ident)?
            $(, name: $index_name:expr)?
            $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis static $name: $crate::index::VectorIndex<$($table)::+::table> = $crate::index::VectorIndex::new(|| {
            use $crate::__private::diesel::Column as _;
            use $($table)::+ as __dv_table;
            let element = $crate::index::__check::vector_column::<__dv_table::table, __dv_table::$column>();
            const _: () = ::std::assert!(
                $crate::index::__check::dims_in_range(
                    $dims,
                    <<<__dv_table::$column as $crate::__private::diesel::Expression>::SqlType
                        as $crate::dsl::VectorOrNullableVector>::Base as $crate::dsl::VectorSqlType>::KIND.max_dims(),
                ),
                "the index's dims must be at least 1 and within its type's limit (16000 for vector and halfvec)"
            );
            let table =
                <__dv_table::table as $crate::__private::diesel::internal::table_macro::StaticQueryFragment>::STATIC_COMPONENT.0;
            #[allow(unused_mut)]
            let mut builder = $crate::index::IndexSpec::builder(table, __dv_table::$column::NAME, $dims).element(element);
            $(
                $crate::index::__check::id_column::<__dv_table::table, __dv_table::$id>();
                builder = builder.id_column(__dv_table::$id::NAME);
            )?
            $( builder = builder.metric($crate::index::Metric::$metric); )?
            $(
                $( $crate::index::__check::column::<__dv_table::table, __dv_table::$partition>(); )*
                builder = builder.partition_by([$(__dv_table::$partition::NAME),*]);
            )?
            $( builder = builder.pg_index($crate::index::PgIndex::$pg_index); )?
            $( builder = builder.sqlite_index($crate::index::SqliteIndex::$sqlite_index); )?
            $( builder = builder.name($index_name); )?
            builder.build()
        });
    };
}
