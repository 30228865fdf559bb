//! Migrations read ahead of time, for async connections.
//!
//! Diesel runs a migration's SQL through `Migration::run(&self, conn: &mut dyn BoxableConnection<DB>)`,
//! a sync call on a sync connection. An `EmbeddedMigrations` or `FileBasedMigrations` migration does
//! nothing there but `conn.batch_execute(sql)`. [`RecordedMigration::record`] runs each migration's up and
//! down on a [`Recorder`], a connection that keeps the SQL it is given and runs nothing, so that the
//! runner can send that SQL on an `AsyncPgConnection` (or move it to SQLite's blocking thread): the
//! migration's name, version, transaction setting and SQL, owned, `Send` and `Sync`.
//!
//! A migration type of one's own that does more than `batch_execute` (loads rows, runs typed queries)
//! cannot be read this way: the recorder refuses any other query, and the migration fails with that
//! message when it is run, before anything of it ran.

use std::fmt;
use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::connection::{
    AnsiTransactionManager, CacheSize, Connection, ConnectionSealed, Instrumentation, SimpleConnection,
};
use diesel::migration::{Migration, MigrationMetadata, MigrationName, MigrationSource, MigrationVersion};
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::{ConnectionResult, QueryResult};

use super::{sorted, MigrationError};

/// A migration's name, version, transaction setting and SQL, read beforehand.
#[derive(Debug)]
pub struct RecordedMigration<DB> {
    name: String,
    version: String,
    run_in_transaction: bool,
    /// The SQL batches of the up migration, in order, or why they could not be read.
    up: Result<Vec<String>, String>,
    /// The same for the down migration.
    down: Result<Vec<String>, String>,
    backend: PhantomData<fn() -> DB>,
}

impl<DB> Clone for RecordedMigration<DB> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            version: self.version.clone(),
            run_in_transaction: self.run_in_transaction,
            up: self.up.clone(),
            down: self.down.clone(),
            backend: PhantomData,
        }
    }
}

impl<DB: Backend + 'static> RecordedMigration<DB> {
    /// Reads `migration`'s SQL (both directions) on a [`Recorder`].
    pub(crate) fn record(migration: &dyn Migration<DB>) -> Self {
        let read = |up: bool| {
            let mut recorder = Recorder::<DB>::default();
            let result = if up { migration.run(&mut recorder) } else { migration.revert(&mut recorder) };
            result.map(|()| recorder.batches).map_err(|e| e.to_string())
        };
        Self {
            name: migration.name().to_string(),
            version: migration.name().version().to_string(),
            run_in_transaction: migration.metadata().run_in_transaction(),
            up: read(true),
            down: read(false),
            backend: PhantomData,
        }
    }

    /// Every migration of `source`, oldest first.
    pub(crate) fn record_all(source: &dyn MigrationSource<DB>) -> Result<Vec<Self>, MigrationError> {
        Ok(sorted(source)?.iter().map(|m| Self::record(&**m)).collect())
    }
}

impl<DB> RecordedMigration<DB> {
    /// The SQL batches of one direction, or the error reading them gave.
    pub(crate) fn sql(&self, up: bool) -> diesel::migration::Result<&[String]> {
        match if up { &self.up } else { &self.down } {
            Ok(batches) => Ok(batches),
            Err(message) => Err(message.clone().into()),
        }
    }
}

impl<DB: Backend> Migration<DB> for RecordedMigration<DB> {
    fn run(&self, conn: &mut dyn diesel::connection::BoxableConnection<DB>) -> diesel::migration::Result<()> {
        for sql in self.sql(true)? {
            conn.batch_execute(sql)?;
        }
        Ok(())
    }

    fn revert(&self, conn: &mut dyn diesel::connection::BoxableConnection<DB>) -> diesel::migration::Result<()> {
        for sql in self.sql(false)? {
            conn.batch_execute(sql)?;
        }
        Ok(())
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        self
    }

    fn name(&self) -> &dyn MigrationName {
        self
    }
}

impl<DB> MigrationMetadata for RecordedMigration<DB> {
    fn run_in_transaction(&self) -> bool {
        self.run_in_transaction
    }
}

impl<DB> MigrationName for RecordedMigration<DB> {
    fn version(&self) -> MigrationVersion<'_> {
        MigrationVersion::from(&self.version)
    }
}

impl<DB> fmt::Display for RecordedMigration<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A "connection" that keeps the SQL batches it is given and runs nothing.
pub(crate) struct Recorder<DB> {
    batches: Vec<String>,
    transactions: AnsiTransactionManager,
    instrumentation: Option<Box<dyn Instrumentation>>,
    backend: PhantomData<fn() -> DB>,
}

impl<DB> Default for Recorder<DB> {
    fn default() -> Self {
        Self {
            batches: Vec::new(),
            transactions: AnsiTransactionManager::default(),
            instrumentation: None,
            backend: PhantomData,
        }
    }
}

impl<DB> SimpleConnection for Recorder<DB> {
    fn batch_execute(&mut self, query: &str) -> QueryResult<()> {
        self.batches.push(query.to_owned());
        Ok(())
    }
}

impl<DB> ConnectionSealed for Recorder<DB> {}

impl<DB: Backend + 'static> Connection for Recorder<DB> {
    type Backend = DB;
    type TransactionManager = AnsiTransactionManager;

    fn establish(_database_url: &str) -> ConnectionResult<Self> {
        Ok(Self::default())
    }

    fn execute_returning_count<T>(&mut self, _source: &T) -> QueryResult<usize>
    where
        T: QueryFragment<Self::Backend> + QueryId,
    {
        Err(diesel::result::Error::QueryBuilderError(
            "this migration runs a query other than an SQL batch, which diesel-vector cannot replay on an async \
             connection: run it on a sync connection"
                .into(),
        ))
    }

    fn transaction_state(&mut self) -> &mut AnsiTransactionManager {
        &mut self.transactions
    }

    fn instrumentation(&mut self) -> &mut dyn Instrumentation {
        &mut self.instrumentation
    }

    fn set_instrumentation(&mut self, instrumentation: impl Instrumentation) {
        self.instrumentation = Some(Box::new(instrumentation));
    }

    fn set_prepared_statement_cache_size(&mut self, _size: CacheSize) {}
}
