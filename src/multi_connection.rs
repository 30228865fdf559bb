//! Queries that Diesel's `MultiBackend` cannot run, on a `#[derive(MultiConnection)]` enum: each one is
//! run by the connection inside the enum, with that backend's own query builder.
//!
//! Through the generated `MultiBackend`, a multi-row `insert_into(..).values(&rows)` does not compile
//! (`InsertWithDefaultKeyword`), nor does `on_conflict(..).do_update()` (`DoesNotSupportOnConflictClause`),
//! although both backends run them. [`multi_connection_dispatch!`](crate::multi_connection_dispatch)
//! gives your enum [`BackendConnection`], and [`execute`], [`load`], [`get_result`] and [`insert_rows`]
//! then run any query that each of its backends can run, checked at compile time for each one:
//!
//! ```
//! # #[cfg(all(feature = "pg", feature = "sqlite"))] mod demo {
//! use diesel::prelude::*;
//! use diesel::upsert::excluded;
//! use diesel_vector::{multi_connection, Vector};
//!
//! #[derive(diesel::MultiConnection)]
//! pub enum AnyConnection {
//!     Postgresql(diesel::PgConnection),
//!     Sqlite(diesel::SqliteConnection),
//! }
//!
//! diesel_vector::multi_connection_support!(MultiBackend);
//! diesel_vector::multi_connection_dispatch!(AnyConnection { Postgresql => pg, Sqlite => sqlite });
//!
//! diesel::table! {
//!     use diesel::sql_types::*;
//!     use diesel_vector::sql_types::Vector;
//!
//!     items (id) {
//!         id -> Integer,
//!         embedding -> Vector,
//!     }
//! }
//!
//! #[derive(Insertable)]
//! #[diesel(table_name = items)]
//! struct NewItem<'a> {
//!     id: i32,
//!     embedding: &'a Vector,
//! }
//!
//! # pub fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let mut sqlite = diesel_vector::sqlite::establish(":memory:")?;
//! # diesel::sql_query("CREATE TABLE items (id INTEGER PRIMARY KEY, embedding BLOB NOT NULL)").execute(&mut sqlite)?;
//! let mut conn = AnyConnection::Sqlite(sqlite); // or AnyConnection::establish(url)
//! let (a, b) = (Vector::new(vec![1.0, 0.0])?, Vector::new(vec![0.0, 1.0])?);
//!
//! // Several rows in one statement.
//! let rows = [NewItem { id: 1, embedding: &a }, NewItem { id: 2, embedding: &b }];
//! assert_eq!(multi_connection::insert_rows(&mut conn, items::table, &rows[..])?, 2);
//!
//! // An upsert: the new embedding replaces the stored one.
//! let upsert = diesel::insert_into(items::table)
//!     .values(NewItem { id: 1, embedding: &b })
//!     .on_conflict(items::id)
//!     .do_update()
//!     .set(items::embedding.eq(excluded(items::embedding)));
//! assert_eq!(multi_connection::execute(&mut conn, upsert)?, 1);
//!
//! // Queries the enum runs itself work as usual.
//! let stored: Vector = items::table.find(1).select(items::embedding).first(&mut conn)?;
//! assert_eq!(stored, b);
//! # Ok(()) }
//! # }
//! # #[cfg(all(feature = "pg", feature = "sqlite"))] fn main() -> Result<(), Box<dyn std::error::Error>> { demo::main() }
//! # #[cfg(not(all(feature = "pg", feature = "sqlite")))] fn main() {}
//! ```
//!
//! The bounds name each backend of this build of the crate (`pg`, `sqlite`): a query must be runnable on
//! all of them, also when your enum holds fewer.

use diesel::query_builder::InsertStatement;
use diesel::{Insertable, QueryResult, Table};

/// A `#[derive(MultiConnection)]` enum that can hand its backend connection to a [`BackendOperation`].
/// Implement it with [`multi_connection_dispatch!`](crate::multi_connection_dispatch).
pub trait BackendConnection {
    /// Runs `operation` with the connection inside `self`.
    fn on_backend<O: BackendOperation>(&mut self, operation: O) -> O::Output;
}

/// Something to do with a connection, written once per backend (a closure cannot be generic over the
/// connection's type). [`execute`], [`load`] and [`get_result`] are such operations.
pub trait BackendOperation {
    /// What it returns.
    type Output;
    /// On PostgreSQL.
    #[cfg(feature = "pg")]
    fn pg(self, conn: &mut diesel::PgConnection) -> Self::Output;
    /// On SQLite.
    #[cfg(feature = "sqlite")]
    fn sqlite(self, conn: &mut diesel::SqliteConnection) -> Self::Output;
}

/// Implements [`BackendConnection`] for a `#[derive(MultiConnection)]` enum: name each variant with the
/// backend it holds (`pg` for a `PgConnection`, `sqlite` for a `SqliteConnection`).
///
/// ```
/// # #[cfg(all(feature = "pg", feature = "sqlite"))] mod demo {
/// #[derive(diesel::MultiConnection)]
/// pub enum AnyConnection {
///     Postgresql(diesel::PgConnection),
///     Sqlite(diesel::SqliteConnection),
/// }
///
/// diesel_vector::multi_connection_dispatch!(AnyConnection { Postgresql => pg, Sqlite => sqlite });
/// # }
/// ```
#[macro_export]
macro_rules! multi_connection_dispatch {
    ($connection:ident { $($variant:ident => $backend:ident),+ $(,)? }) => {
        impl $crate::multi_connection::BackendConnection for $connection {
            fn on_backend<O: $crate::multi_connection::BackendOperation>(&mut self, operation: O) -> O::Output {
                match self {
                    $($connection::$variant(conn) => $crate::multi_connection::BackendOperation::$backend(operation, conn),)+
                }
            }
        }
    };
}

// One marker per backend, implemented for everything when the backend's feature is off, so that a bound
// can name "runs on every backend of this build" in every feature combination.

/// A query PostgreSQL can execute (anything, in a build without `pg`).
#[cfg(feature = "pg")]
pub trait PgExecute: diesel::query_dsl::methods::ExecuteDsl<diesel::PgConnection> {}
#[cfg(feature = "pg")]
impl<Q: diesel::query_dsl::methods::ExecuteDsl<diesel::PgConnection>> PgExecute for Q {}
/// A query PostgreSQL can execute (anything, in a build without `pg`).
#[cfg(not(feature = "pg"))]
pub trait PgExecute {}
#[cfg(not(feature = "pg"))]
impl<Q> PgExecute for Q {}

/// A query SQLite can execute (anything, in a build without `sqlite`).
#[cfg(feature = "sqlite")]
pub trait SqliteExecute: diesel::query_dsl::methods::ExecuteDsl<diesel::SqliteConnection> {}
#[cfg(feature = "sqlite")]
impl<Q: diesel::query_dsl::methods::ExecuteDsl<diesel::SqliteConnection>> SqliteExecute for Q {}
/// A query SQLite can execute (anything, in a build without `sqlite`).
#[cfg(not(feature = "sqlite"))]
pub trait SqliteExecute {}
#[cfg(not(feature = "sqlite"))]
impl<Q> SqliteExecute for Q {}

/// A query PostgreSQL can load as `U` (anything, in a build without `pg`).
#[cfg(feature = "pg")]
pub trait PgLoad<'query, U>: diesel::query_dsl::LoadQuery<'query, diesel::PgConnection, U> {}
#[cfg(feature = "pg")]
impl<'query, Q: diesel::query_dsl::LoadQuery<'query, diesel::PgConnection, U>, U> PgLoad<'query, U> for Q {}
/// A query PostgreSQL can load as `U` (anything, in a build without `pg`).
#[cfg(not(feature = "pg"))]
pub trait PgLoad<'query, U> {}
#[cfg(not(feature = "pg"))]
impl<Q, U> PgLoad<'_, U> for Q {}

/// A query SQLite can load as `U` (anything, in a build without `sqlite`).
#[cfg(feature = "sqlite")]
pub trait SqliteLoad<'query, U>: diesel::query_dsl::LoadQuery<'query, diesel::SqliteConnection, U> {}
#[cfg(feature = "sqlite")]
impl<'query, Q: diesel::query_dsl::LoadQuery<'query, diesel::SqliteConnection, U>, U> SqliteLoad<'query, U> for Q {}
/// A query SQLite can load as `U` (anything, in a build without `sqlite`).
#[cfg(not(feature = "sqlite"))]
pub trait SqliteLoad<'query, U> {}
#[cfg(not(feature = "sqlite"))]
impl<Q, U> SqliteLoad<'_, U> for Q {}

struct Execute<Q>(Q);

impl<Q: PgExecute + SqliteExecute> BackendOperation for Execute<Q> {
    type Output = QueryResult<usize>;
    #[cfg(feature = "pg")]
    fn pg(self, conn: &mut diesel::PgConnection) -> QueryResult<usize> {
        diesel::query_dsl::methods::ExecuteDsl::execute(self.0, conn)
    }
    #[cfg(feature = "sqlite")]
    fn sqlite(self, conn: &mut diesel::SqliteConnection) -> QueryResult<usize> {
        diesel::query_dsl::methods::ExecuteDsl::execute(self.0, conn)
    }
}

struct Load<'query, Q, U>(Q, std::marker::PhantomData<(&'query (), U)>);

impl<'query, Q: PgLoad<'query, U> + SqliteLoad<'query, U>, U> BackendOperation for Load<'query, Q, U> {
    type Output = QueryResult<Vec<U>>;
    #[cfg(feature = "pg")]
    fn pg(self, conn: &mut diesel::PgConnection) -> QueryResult<Vec<U>> {
        diesel::RunQueryDsl::load(self.0, conn)
    }
    #[cfg(feature = "sqlite")]
    fn sqlite(self, conn: &mut diesel::SqliteConnection) -> QueryResult<Vec<U>> {
        diesel::RunQueryDsl::load(self.0, conn)
    }
}

/// Executes `query` with the backend connection inside `conn` and returns the rows affected: for
/// statements the enum's `MultiBackend` cannot build, such as multi-row inserts and `ON CONFLICT ... DO
/// UPDATE`.
///
/// # Errors
///
/// The database's error.
pub fn execute<C: BackendConnection, Q: PgExecute + SqliteExecute>(conn: &mut C, query: Q) -> QueryResult<usize> {
    conn.on_backend(Execute(query))
}

/// Loads the rows of `query` (a `RETURNING` clause, for example) with the backend connection inside
/// `conn`.
///
/// # Errors
///
/// The database's error.
pub fn load<'query, C, Q, U>(conn: &mut C, query: Q) -> QueryResult<Vec<U>>
where
    C: BackendConnection,
    Q: PgLoad<'query, U> + SqliteLoad<'query, U>,
{
    conn.on_backend(Load(query, std::marker::PhantomData))
}

/// The first row of `query`, as [`load`] reads it.
///
/// # Errors
///
/// [`diesel::result::Error::NotFound`] without rows, or the database's error.
pub fn get_result<'query, C, Q, U>(conn: &mut C, query: Q) -> QueryResult<U>
where
    C: BackendConnection,
    Q: PgLoad<'query, U> + SqliteLoad<'query, U>,
{
    load(conn, query)?.into_iter().next().ok_or(diesel::result::Error::NotFound)
}

/// Inserts `rows` (a slice or `Vec` of insertable values) into `table` in one statement per backend:
/// PostgreSQL's multi-row `INSERT`, SQLite's batch insert (one prepared statement per row in a
/// transaction). Returns the rows inserted.
///
/// # Errors
///
/// The database's error; on both backends nothing is inserted then.
pub fn insert_rows<C, T, V>(conn: &mut C, table: T, rows: V) -> QueryResult<usize>
where
    C: BackendConnection,
    T: Table,
    V: Insertable<T>,
    InsertStatement<T, V::Values>: PgExecute + SqliteExecute,
{
    execute(conn, diesel::insert_into(table).values(rows))
}
