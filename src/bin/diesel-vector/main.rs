//! `diesel-vector`: see and repair a diesel-vector installation on PostgreSQL or SQLite, and move it
//! from one to the other. A thin layer over the library: every command is one call into
//! `diesel_vector` (`database`, `doctor`, `copy`, `jsonl`, `search`); this file parses arguments and
//! `output.rs` prints.

/// `println!` that returns the error instead of panicking: a reader that goes away (`| head`) or a full
/// disk ends the command with an error, as any other failure does.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod files;
mod output;

use std::fs::File;
use std::io::{self, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use diesel_vector::copy::{self, CopyOptions};
use diesel_vector::database::{AppMigrations, BackendKind, DatabaseConnection};
use diesel_vector::index::{registry, IndexSpec};
use diesel_vector::search::{Metric, Search, Strategy};
use diesel_vector::{doctor, jsonl, Vector};

use output::Progress;

/// Operate diesel-vector databases on PostgreSQL (pgvector) or SQLite (sqlite-vec): migrations, the
/// vector index, and moving an application's tables from one backend to the other.
/// The backend follows the URL: postgres:// or postgresql:// is PostgreSQL; sqlite://PATH, file: URIs,
/// plain paths and :memory: are SQLite.
#[derive(Debug, Parser)]
#[command(name = "diesel-vector", version, propagate_version = true)]
struct Cli {
    /// The database to work on [default: the DATABASE_URL environment variable].
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run, revert, redo or list the migrations (like `diesel migration`): diesel-vector's own
    /// (fragments and fragment_embeddings), or the application's with --migration-dir.
    #[command(visible_alias = "migrate")]
    Migration(MigrationArgs),
    /// Report the backend and its vector extension, every vector index (registered ones, and pgvector
    /// columns and indexes the registry does not know) with its rows, kind, state and staleness, the
    /// application's migrations, and diesel-vector's own fragments schema where the database uses it;
    /// ends with a verdict and exits 1 when something needs action. Reads only.
    Doctor {
        /// The application's migration folder: its migrations not applied yet are reported as pending.
        #[arg(long)]
        migration_dir: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the registered vector indexes (or one table's): SQLite's vec0 tables from the tables; on
    /// PostgreSQL the registered kind (ivfflat sized for the rows, or HNSW).
    Reindex {
        /// Only the indexes of this table.
        #[arg(long)]
        table: Option<String>,
        /// Only the index of this name (as `doctor` lists it).
        #[arg(long)]
        index: Option<String>,
        /// PostgreSQL: build HNSW indexes whatever the registry records.
        #[arg(long)]
        hnsw: bool,
    },
    /// Copy an application's tables between two databases of either backend (parents first, each column
    /// converted to the target's type), then verify them. Resumable: run it again after an interruption.
    Copy {
        /// The source database URL (an SQLite source is opened read-only).
        #[arg(long)]
        from: String,
        /// The target database URL (migrated first).
        #[arg(long)]
        to: String,
        #[command(flatten)]
        migrations: TargetMigrationArgs,
        #[command(flatten)]
        tables: TableArgs,
        #[command(flatten)]
        batch: BatchArgs,
    },
    /// Write the application's tables as JSON lines (a header per table, then a line per row; floats
    /// bit-exact).
    Export {
        /// The file to write [default: standard output].
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        tables: TableArgs,
        #[command(flatten)]
        batch: BatchArgs,
    },
    /// Read JSON lines written by `export` into the database (migrated first).
    Import {
        /// The file to read [default: standard input].
        #[arg(long, short)]
        input: Option<PathBuf>,
        #[command(flatten)]
        migrations: TargetMigrationArgs,
        #[command(flatten)]
        tables: TableArgs,
        #[command(flatten)]
        batch: BatchArgs,
    },
    /// Generate migrations (see `generate vector-index --help`).
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Print the rows nearest to a vector, from a table with a registered vector index (or the
    /// fragments of a provider and model).
    #[command(group(clap::ArgGroup::new("target").required(true).args(["table", "index", "provider"])))]
    Search {
        /// The table to search (one with a vector index registered by its migration).
        #[arg(long)]
        table: Option<String>,
        /// The vector column, when the table has several indexed ones.
        #[arg(long, requires = "table")]
        column: Option<String>,
        /// The index to search, by the name `doctor` lists, when a column has several (or instead of
        /// --table).
        #[arg(long, conflicts_with = "column")]
        index: Option<String>,
        /// diesel-vector's fragments: the embeddings' provider (with --model).
        #[arg(long, requires = "model", conflicts_with_all = ["table", "index", "filters", "null_filters"])]
        provider: Option<String>,
        /// diesel-vector's fragments: the embeddings' model (with --provider).
        #[arg(long, requires = "provider")]
        model: Option<String>,
        /// The query, as a JSON array or pgvector's text form `[0.1,-2,...]` (vector and halfvec columns),
        /// `{1:0.5,7:2}/30000` (sparsevec) or `0110...` (bit); `@FILE` reads it from a file (at most 512 KiB).
        #[arg(long, allow_hyphen_values = true)]
        vector: String,
        /// How many neighbours.
        #[arg(short, default_value_t = 10)]
        k: usize,
        /// The distance [default: the index's].
        #[arg(long, value_enum)]
        metric: Option<MetricArg>,
        /// Only rows whose COLUMN equals VALUE (repeat for several); pushed into the index for its partition
        /// columns.
        #[arg(long = "where", value_name = "COLUMN=VALUE", id = "filters")]
        filters: Vec<String>,
        /// Only rows whose COLUMN is NULL (repeat for several; `--where COLUMN=NULL` compares with the text
        /// "NULL").
        #[arg(long = "where-null", value_name = "COLUMN")]
        null_filters: Vec<String>,
        /// Compute every matching row's distance instead of using the index.
        #[arg(long)]
        exact: bool,
        /// Print the results as JSON: an array of {"rank", "id", "distance"}.
        #[arg(long)]
        json: bool,
    },
    /// PostgreSQL: build the partition index of a table's vector index for one value of one of its
    /// partition columns (an HNSW index over those rows only, which searches filtered on that value run on),
    /// or drop it. Building blocks writes to the table until it is done.
    PartitionIndex {
        /// The table (one with a vector index registered by its migration).
        #[arg(long)]
        table: String,
        /// The vector column, when the table has several indexed ones.
        #[arg(long)]
        column: Option<String>,
        /// The partition column and its value.
        #[arg(long = "where", value_name = "COLUMN=VALUE")]
        filter: String,
        /// Drop the partition index instead.
        #[arg(long)]
        drop: bool,
    },
}

#[derive(Debug, clap::Args)]
struct MigrationArgs {
    /// The application's migration folder for the URL's backend (such as migrations_pg or
    /// migrations_sqlite), run with the same checks, lock and adoption [default: diesel-vector's own
    /// migrations].
    #[arg(long, global = true, value_name = "DIR")]
    migration_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: MigrationCommand,
}

#[derive(Debug, Subcommand)]
enum GenerateCommand {
    /// Write a migration that creates a vector index on a table of yours, into both backends' migration
    /// folders (same version and name in each); `diesel migration run` and `diesel-vector migration run`
    /// apply it. Nothing needs sqlite-vec.
    VectorIndex(VectorIndexArgs),
    /// Write a migration that builds a partition index (PostgreSQL's HNSW index of one value of a partition
    /// column, as the `partition-index` command builds it) into both backends' migration folders; give the
    /// vector index's declaration as its own migration was generated from. SQLite's migration only says that
    /// SQLite keeps none.
    PartitionIndex(PartitionIndexArgs),
}

#[derive(Debug, clap::Args)]
struct VectorIndexArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Also add the vector column (nullable) to the existing table.
    #[arg(long)]
    add_column: bool,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, clap::Args)]
struct PartitionIndexArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// The partition column and its value.
    #[arg(long = "where", value_name = "COLUMN=VALUE")]
    filter: String,
    #[command(flatten)]
    output: OutputArgs,
}

/// A vector index's declaration, as its migration was generated from.
#[derive(Debug, clap::Args)]
struct SpecArgs {
    /// The table.
    #[arg(long)]
    table: String,
    /// The vector column.
    #[arg(long)]
    column: String,
    /// The vector's dimensions.
    #[arg(long)]
    dims: u64,
    /// The primary-key column (an integer).
    #[arg(long, default_value = "id")]
    id: String,
    /// The column's type.
    #[arg(long = "type", value_enum, default_value_t = ElementArg::Vector)]
    element: ElementArg,
    /// The distance the index is built for [default: cosine; hamming for bit].
    #[arg(long, value_enum)]
    metric: Option<MetricArg>,
    /// A column searches may filter on by equality, pushed into the index (repeat for several).
    #[arg(long = "partition-by")]
    partition_by: Vec<String>,
    /// PostgreSQL's index.
    #[arg(long, value_enum, default_value_t = PgIndexArg::Hnsw)]
    index: PgIndexArg,
    /// What SQLite keeps for searches [default: codes; none for bit and sparsevec, which codes do not index].
    #[arg(long, value_enum)]
    sqlite_index: Option<SqliteIndexArg>,
    /// The index's name [default: __dv_<table>_<column>]; SQLite names its tables after it.
    #[arg(long)]
    name: Option<String>,
}

/// Where a generated migration goes.
#[derive(Debug, clap::Args)]
struct OutputArgs {
    /// PostgreSQL's migration folder.
    #[arg(long, default_value = "migrations_pg")]
    migrations_pg: PathBuf,
    /// SQLite's migration folder.
    #[arg(long, default_value = "migrations_sqlite")]
    migrations_sqlite: PathBuf,
    /// The migration's version, YYYYMMDDHHMMSS [default: now, UTC, or the next second neither folder uses].
    #[arg(long)]
    migration_version: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ElementArg {
    Vector,
    Halfvec,
    Bit,
    Sparsevec,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PgIndexArg {
    Hnsw,
    Ivfflat,
    None,
    /// An HNSW index on `binary_quantize(column)` (`vector` columns); searches re-rank its candidates exactly.
    BinaryQuantized,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SqliteIndexArg {
    Codes,
    Vec0,
    #[value(name = "codes,vec0")]
    CodesAndVec0,
    /// The codes and a contiguous copy of the vectors, which exact searches scan at memory speed.
    #[value(name = "codes,vectors")]
    CodesAndVectors,
    None,
}

#[derive(Debug, Subcommand)]
enum MigrationCommand {
    /// Apply every pending migration (checking pgvector first; adopting objects that exist already).
    Run,
    /// Revert the latest migration.
    Revert,
    /// Revert the latest migration and apply it again.
    Redo,
    /// List the migrations, applied ([X]) or pending ([ ]).
    #[command(visible_alias = "list")]
    Status,
}

#[derive(Debug, clap::Args)]
struct BatchArgs {
    /// Rows per batch: per read and per transaction.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Skip invalid rows (a value its column cannot hold, a malformed vector, a missing parent, a row
    /// the target refuses) and report them, instead of stopping.
    #[arg(long)]
    skip_invalid: bool,
}

#[derive(Debug, clap::Args)]
struct TableArgs {
    /// Only this table (repeat for more) [default: every application table].
    #[arg(long = "table", value_name = "TABLE")]
    tables: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct TargetMigrationArgs {
    /// The application's Diesel migrations for a PostgreSQL target, run on it first.
    #[arg(long, value_name = "DIR")]
    migrations_pg: Option<PathBuf>,
    /// The application's Diesel migrations for an SQLite target, run on it first.
    #[arg(long, value_name = "DIR")]
    migrations_sqlite: Option<PathBuf>,
}

fn options(batch: &BatchArgs, tables: &TableArgs, migrations: Option<&TargetMigrationArgs>) -> CopyOptions {
    let mut options = CopyOptions::default()
        .batch_size(batch.batch_size as usize)
        .skip_invalid(batch.skip_invalid)
        .tables(tables.tables.iter().cloned());
    if let Some(m) = migrations {
        if let Some(dir) = &m.migrations_pg {
            options = options.pg_migrations(dir);
        }
        if let Some(dir) = &m.migrations_sqlite {
            options = options.sqlite_migrations(dir);
        }
    }
    options
}

/// What the CLI adds to a library error: the flags that change the outcome.
fn hint(e: &copy::CopyError) -> Option<&'static str> {
    use copy::{CopyError, SchemaError};
    match e {
        CopyError::InvalidRows(_) => Some("--skip-invalid leaves them out, writes the rest and reports them"),
        CopyError::Schema(SchemaError::MissingTables(_) | SchemaError::MissingColumns { .. }) => Some(
            "--migrations-pg DIR or --migrations-sqlite DIR runs the application's migrations on the target first; \
             --table T moves only the tables named",
        ),
        CopyError::Schema(_) => Some("--table T moves only the tables named"),
        _ => None,
    }
}

/// A library error with the CLI's hint, if any.
fn with_hint(e: copy::CopyError) -> Box<dyn std::error::Error> {
    match hint(&e) {
        Some(h) => format!("{e}\n({h})").into(),
        None => Box::new(e),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MetricArg {
    Cosine,
    L2,
    L1,
    #[value(alias = "inner_product")]
    InnerProduct,
    Hamming,
    Jaccard,
}

impl From<MetricArg> for Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::Cosine => Metric::Cosine,
            MetricArg::L2 => Metric::L2,
            MetricArg::L1 => Metric::L1,
            MetricArg::InnerProduct => Metric::InnerProduct,
            MetricArg::Hamming => Metric::Hamming,
            MetricArg::Jaccard => Metric::Jaccard,
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        // The reader of the output went away (`| head`): nothing to tell it, and a message would only be
        // noise on the terminal. The status still says the output was cut short (as SIGPIPE's would, which
        // Rust programs ignore): `doctor`'s verdict, say, was not delivered.
        Err(e) if broken_pipe(&*e) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {}", output::escape_keeping_lines(&output::error_text(&*e)));
            ExitCode::FAILURE
        }
    };
    // The connections an exact scan kept for the next one: closed, so that the database's last
    // connection ends its WAL as it would without them.
    diesel_vector::sqlite::close_scan_connections();
    code
}

/// Whether `e`, or an error it wraps, is a write to a pipe whose reader has gone.
fn broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |e| e.source())
        .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

fn database_url(cli: &Cli) -> Result<&str> {
    match cli.database_url.as_deref() {
        None => Err("no database: pass --database-url or set DATABASE_URL".into()),
        Some(url) if url.trim().is_empty() => {
            Err("the database URL is empty (--database-url or DATABASE_URL): give a postgres:// URL or an SQLite path"
                .into())
        }
        Some(url) => Ok(url),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Migration(args) => {
            let url = database_url(&cli)?;
            // Checked before connecting, so that a mistyped folder creates no SQLite file.
            if let Some(dir) = args.migration_dir.as_ref().filter(|d| !d.is_dir()) {
                return Err(format!("--migration-dir {}: no such directory", dir.display()).into());
            }
            // Only `run` creates an SQLite file; listing reads only, and there is nothing to revert in a new one.
            let created = diesel_vector::database::sqlite_file(url).filter(|path| !path.exists());
            let mut conn = match args.command {
                MigrationCommand::Status => DatabaseConnection::establish_read_only(url)?,
                MigrationCommand::Run => DatabaseConnection::establish(url)?,
                MigrationCommand::Revert | MigrationCommand::Redo => DatabaseConnection::establish_existing(url)?,
            };
            let app = args.migration_dir.as_ref().map(AppMigrations::dir);
            let result = migration(&mut conn, &args.command, app.as_ref());
            drop(conn);
            if let (Err(e), Some(path)) = (&result, created) {
                // A run that created the file and applied nothing (the wrong folder, a first migration that
                // fails) leaves no database behind that later commands would take for the application's.
                if files::remove_if_unused(url, &path) {
                    return Err(format!(
                        "{e}\n{} was not kept: this run created it and applied nothing",
                        path.display()
                    )
                    .into());
                }
            }
            result?;
        }
        Command::Doctor { migration_dir, json } => {
            let mut conn = DatabaseConnection::establish_read_only(database_url(&cli)?)?;
            let mut options = doctor::DiagnoseOptions::default();
            if let Some(dir) = migration_dir {
                options = options.migration_dir(dir);
            }
            let report = doctor::diagnose_with(&mut conn, &options)?;
            if *json {
                say!("{}", output::doctor_json(&report))?;
            } else {
                output::doctor_text(&report)?;
            }
            if report.needs_action() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Reindex { table, index, hnsw } => {
            let mut conn = DatabaseConnection::establish_existing(database_url(&cli)?)?;
            let mut options = doctor::ReindexOptions::default().hnsw(*hnsw);
            if let Some(table) = table {
                options = options.table(table);
            }
            if let Some(index) = index {
                options = options.index(index);
            }
            for rebuilt in doctor::reindex(&mut conn, &options)? {
                say!("{}", output::reindexed(&rebuilt))?;
            }
        }
        Command::Copy { from, to, migrations, tables, batch } => {
            let mut progress = Progress::new("copy");
            let options = options(batch, tables, Some(migrations));
            let result = copy::copy(from, to, &options, &mut |event| progress.copy_event(&event));
            progress.finish();
            match result {
                Ok(report) => output::copy_report(&report)?,
                Err(copy::CopyError::Verification(report)) => {
                    output::copy_report(&report)?;
                    return Err(Box::new(copy::CopyError::Verification(report)));
                }
                Err(e) => return Err(with_hint(e)),
            }
        }
        Command::Export { output: path, tables, batch } => {
            let url = database_url(&cli)?;
            let to_file = path.as_ref().filter(|p| p.as_os_str() != "-");
            if let Some(p) = to_file {
                files::refuse_database_as_output(url, p)?;
            }
            let mut conn = DatabaseConnection::establish_read_only(url)?;
            conn.without_memory_map()?;
            let mut progress = Progress::new("export");
            let options = options(batch, tables, None);
            let mut export = |out: &mut dyn Write| {
                let report = jsonl::export(&mut conn, out, &options, &mut |table, n| progress.count(table, n));
                progress.finish();
                report.map_err(jsonl_error)
            };
            let report = match to_file {
                Some(p) => files::write_atomically(p, |out| export(out))?,
                None => {
                    let mut out = io::BufWriter::new(io::stdout().lock());
                    let report = export(&mut out)?;
                    out.flush()?;
                    report
                }
            };
            output::jsonl_report("exported", &report)?;
        }
        Command::Import { input, migrations, tables, batch } => {
            // The input first: a file that cannot be read must not leave anything behind.
            let mut reader: Box<dyn io::BufRead> = match input {
                Some(p) if p.as_os_str() != "-" => {
                    Box::new(BufReader::new(File::open(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?))
                }
                _ => Box::new(io::stdin().lock()),
            };
            // An import makes its target only when it will migrate it: migrations of the application's are
            // given for the target's backend, or the file comes from a database on diesel-vector's own
            // schema. Otherwise a mistyped path is an error, never a new empty database.
            let url = database_url(&cli)?;
            let migrates = match BackendKind::from_url(url)? {
                BackendKind::Postgres => migrations.migrations_pg.is_some(),
                _ => migrations.migrations_sqlite.is_some(),
            };
            let mut conn = if migrates || jsonl::declares_crate_schema(reader.fill_buf()?) {
                DatabaseConnection::establish(url)?
            } else {
                DatabaseConnection::establish_existing(url)?
            };
            conn.without_memory_map()?;
            let mut progress = Progress::new("import");
            let options = options(batch, tables, Some(migrations));
            let report = jsonl::import(&mut conn, &mut reader, &options, &mut |n| progress.count("lines", n));
            progress.finish();
            output::jsonl_report("imported", &report.map_err(jsonl_error)?)?;
        }
        Command::Generate(GenerateCommand::VectorIndex(args)) => generate_vector_index(args)?,
        Command::Generate(GenerateCommand::PartitionIndex(args)) => generate_partition_index(args)?,
        Command::PartitionIndex { table, column, filter, drop } => {
            let mut conn = DatabaseConnection::establish_existing(database_url(&cli)?)?;
            let spec = registered(&mut conn, table, column.as_deref())?;
            let (partition, value) = column_and_value(&spec, filter)?;
            say!("{}", partition_index(&mut conn, &spec, partition, value, *drop)?)?;
        }
        Command::Search {
            table,
            column,
            index,
            provider,
            model,
            vector,
            k,
            metric,
            filters,
            null_filters,
            exact,
            json,
        } => {
            let text = match vector.strip_prefix('@') {
                Some(path) => files::read_query(path.as_ref())?,
                None => vector.clone(),
            };
            let strategy = if *exact { Strategy::Exact } else { Strategy::Auto };
            let mut conn = open_for_search(database_url(&cli)?)?;
            if let (Some(provider), Some(model)) = (provider, model) {
                let query: Vector = text.parse().map_err(|e| format!("--vector: {e}"))?;
                let mut search = Search::new(provider, model, &query).k(*k).strategy(strategy);
                if let Some(metric) = metric {
                    search = search.metric((*metric).into());
                }
                let hits = conn.search(&search)?;
                let ids: Vec<i64> = hits.iter().map(|h| h.fragment_id).collect();
                let fragments = conn.fragments(&ids)?;
                if *json {
                    say!("{}", output::search_json(&hits, &fragments))?;
                } else {
                    output::search_text(&hits, &fragments, io::stdout().is_terminal())?;
                }
            } else {
                let spec = &match index {
                    Some(index) => registered_index(&mut conn, table.as_deref(), index)?,
                    None => registered(&mut conn, table.as_deref().unwrap_or_default(), column.as_deref())?,
                };
                // The query in the text form of the column's type: `[1,2]` (vector, halfvec), `{1:0.5}/30000`
                // (sparsevec), `0101...` (bit).
                let parsed = QueryValue::parse(spec.element(), &text).map_err(|e| format!("--vector: {e}"))?;
                let mut search = spec.search(parsed.as_search()).k(*k).strategy(strategy);
                if let Some(metric) = metric {
                    search = search.metric((*metric).into());
                }
                for filter in filters {
                    let (column, value) = column_and_value(spec, filter)?;
                    search = search.filter_eq(column, value);
                }
                for column in null_filters {
                    search = search.filter_eq(column, diesel_vector::search::Value::Null);
                }
                let hits = conn.search_index(&search)?;
                if *json {
                    say!("{}", output::hits_json(&hits))?;
                } else {
                    output::hits_text(spec, &hits)?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A query read from the command line, of an index column's type.
enum QueryValue {
    Vector(Vector),
    Half(diesel_vector::HalfVector),
    Sparse(diesel_vector::SparseVector),
    Bit(diesel_vector::Bit),
}

impl QueryValue {
    fn parse(
        element: diesel_vector::index::Element,
        text: &str,
    ) -> std::result::Result<Self, diesel_vector::VectorError> {
        use diesel_vector::index::Element;
        Ok(match element {
            Element::HalfVector => Self::Half(text.trim().parse()?),
            Element::SparseVector => Self::Sparse(text.trim().parse()?),
            Element::Bit => Self::Bit(text.trim().parse()?),
            _ => Self::Vector(text.parse()?),
        })
    }

    fn as_search(&self) -> diesel_vector::search::SearchVector<'_> {
        match self {
            Self::Vector(v) => v.into(),
            Self::Half(v) => v.into(),
            Self::Sparse(v) => v.into(),
            Self::Bit(v) => v.into(),
        }
    }
}

/// The database a search reads: for reading and writing (a search brings a stale index up to date), or, when
/// that fails, for reading only (a WAL database in a read-only directory, whose shared-memory file cannot be
/// created, is read as it stands, or refused naming its log); the read-only attempt's error is the one shown,
/// since it says why.
fn open_for_search(url: &str) -> Result<DatabaseConnection> {
    match DatabaseConnection::establish_existing(url) {
        Ok(conn) => Ok(conn),
        Err(e) if !matches!(BackendKind::from_url(url), Ok(BackendKind::Sqlite)) => Err(e.into()),
        Err(_) => Ok(DatabaseConnection::establish_read_only(url)?),
    }
}

/// The vector index registered for `table` (and `column`, when it has several), or an error that says what to
/// do.
fn registered(conn: &mut DatabaseConnection, table: &str, column: Option<&str>) -> Result<IndexSpec> {
    let specs = conn.indexes()?;
    match registry::find(&specs, table, column) {
        Ok(spec) => Ok(spec.clone()),
        Err(e) if !conn.has_table(table)? => Err(format!("table {table} does not exist in this database ({e})").into()),
        Err(e) => {
            let on_table: Vec<&IndexSpec> = specs.iter().filter(|s| s.table() == table).collect();
            let mut columns: Vec<&str> = on_table.iter().map(|s| s.column()).collect();
            columns.sort_unstable();
            columns.dedup();
            if column.is_none() && columns.len() > 1 {
                return Err(format!(
                    "table {table} has a vector index on each of {}: choose one with --column",
                    columns.join(", ")
                )
                .into());
            }
            if on_table.iter().filter(|s| column.is_none_or(|c| s.column() == c)).count() > 1 {
                return Err(format!("{e}; choose one with --index NAME").into());
            }
            Err(format!(
                "{e}; register the column's index with `diesel-vector generate vector-index --table {} \
                 --column COLUMN --dims N` and apply the migration",
                output::shell_word(table)
            )
            .into())
        }
    }
}

/// The vector index registered under `name` (on `table`, when given).
fn registered_index(conn: &mut DatabaseConnection, table: Option<&str>, name: &str) -> Result<IndexSpec> {
    Ok(diesel_vector::index::registry::named(&conn.indexes()?, name, table)?.clone())
}

/// `COLUMN=VALUE` split where `COLUMN` is one of `spec`'s table's partition columns when one of them
/// matches (a column's name may hold `=`), else at the first `=`.
fn column_and_value<'a>(spec: &IndexSpec, filter: &'a str) -> Result<(&'a str, &'a str)> {
    let known = filter
        .rmatch_indices('=')
        .map(|(at, _)| (&filter[..at], &filter[at + 1..]))
        .find(|(column, _)| spec.partition_by().any(|p| p == *column));
    known.or_else(|| filter.split_once('=')).ok_or_else(|| format!("--where {filter:?}: expected COLUMN=VALUE").into())
}

/// Builds (or drops) `spec`'s partition index for `partition` = `value`; what was done, for the terminal.
fn partition_index(
    conn: &mut DatabaseConnection,
    spec: &IndexSpec,
    partition: &str,
    value: &str,
    drop: bool,
) -> Result<String> {
    let what = format!("{}.{} where {partition} = {value:?}", spec.table(), spec.column());
    #[cfg(feature = "pg")]
    if let DatabaseConnection::Pg(pg) = conn {
        return Ok(if drop {
            match diesel_vector::pg::drop_partition_index(pg, spec, partition, value)? {
                true => format!("dropped the partition index of {what}"),
                false => format!("{what} has no partition index: nothing dropped"),
            }
        } else {
            let name = diesel_vector::pg::create_partition_index(pg, spec, partition, value)?;
            format!("partition index {name} of {what} is in place (searches filtered on that value run on it)")
        });
    }
    let _ = (conn, drop);
    Err(format!(
        "partition indexes are PostgreSQL's ({what}): on SQLite the quantized codes filter a partition in their scan"
    )
    .into())
}

fn jsonl_error(e: jsonl::JsonlError) -> Box<dyn std::error::Error> {
    match e {
        jsonl::JsonlError::Database(e) => with_hint(e),
        e => Box::new(e),
    }
}

/// The index `args` declare.
fn declared(args: &SpecArgs) -> Result<IndexSpec> {
    use diesel_vector::index::{Element, PgIndex, SqliteIndex};
    let element = match args.element {
        ElementArg::Vector => Element::Vector,
        ElementArg::Halfvec => Element::HalfVector,
        ElementArg::Bit => Element::Bit,
        ElementArg::Sparsevec => Element::SparseVector,
    };
    let mut builder = IndexSpec::builder(&args.table, &args.column, args.dims)
        .id_column(&args.id)
        .element(element)
        .partition_by(args.partition_by.iter().cloned())
        .pg_index(match args.index {
            PgIndexArg::Hnsw => PgIndex::Hnsw,
            PgIndexArg::Ivfflat => PgIndex::Ivfflat,
            PgIndexArg::None => PgIndex::None,
            PgIndexArg::BinaryQuantized => PgIndex::BinaryQuantized,
        });
    if let Some(metric) = args.metric {
        builder = builder.metric(metric.into());
    }
    if let Some(sqlite) = args.sqlite_index {
        builder = builder.sqlite_index(match sqlite {
            SqliteIndexArg::Codes => SqliteIndex::CODES,
            SqliteIndexArg::Vec0 => SqliteIndex::VEC0,
            SqliteIndexArg::CodesAndVec0 => SqliteIndex::CODES_AND_VEC0,
            SqliteIndexArg::CodesAndVectors => SqliteIndex::CODES_AND_VECTORS,
            SqliteIndexArg::None => SqliteIndex::NONE,
        });
    }
    if let Some(name) = &args.name {
        builder = builder.name(name);
    }
    Ok(builder.build()?)
}

/// Writes `migration` where `output` says, and says how to apply it.
fn write_migration(migration: &diesel_vector::index::generate::Migration, output: &OutputArgs) -> Result<()> {
    use diesel_vector::index::generate;
    let version = match &output.migration_version {
        Some(version) => version.clone(),
        None => generate::free_version(&output.migrations_pg, &output.migrations_sqlite),
    };
    let (pg, sqlite) = match generate::write(migration, &version, &output.migrations_pg, &output.migrations_sqlite) {
        Err(e @ generate::WriteError::IndexNameTaken { .. }) => return Err(format!("{e} (--name NAME)").into()),
        written => written?,
    };
    say!("Created {}", pg.display())?;
    say!("Created {}", sqlite.display())?;
    // `migration run` alone applies diesel-vector's own migrations: say how to apply these.
    say!(
        "Apply them with `diesel-vector migration run --migration-dir {}` (or {}), or `diesel migration run` with \
         the same folder",
        output.migrations_sqlite.display(),
        output.migrations_pg.display()
    )?;
    Ok(())
}

fn generate_vector_index(args: &VectorIndexArgs) -> Result<()> {
    use diesel_vector::index::generate;
    let spec = declared(&args.spec)?;
    write_migration(&generate::render(&spec, &generate::Options::default().add_column(args.add_column)), &args.output)
}

fn generate_partition_index(args: &PartitionIndexArgs) -> Result<()> {
    let spec = declared(&args.spec)?;
    let (column, value) = column_and_value(&spec, &args.filter)?;
    write_migration(&diesel_vector::index::generate::render_partition_index(&spec, column, value)?, &args.output)
}

/// One `migration` subcommand, on the application's migrations (`app`) or diesel-vector's own.
fn migration(conn: &mut DatabaseConnection, command: &MigrationCommand, app: Option<&AppMigrations<'_>>) -> Result<()> {
    match command {
        MigrationCommand::Run => {
            let applied = match app {
                Some(app) => conn.run_pending_migrations_from(app)?,
                None => conn.run_pending_migrations()?,
            };
            if applied.is_empty() {
                say!("No pending migrations")?;
            }
            for m in applied {
                say!("{} migration {}", output::outcome(m.outcome), m.name)?;
            }
        }
        MigrationCommand::Revert => {
            let reverted = match app {
                Some(app) => conn.revert_last_migration_from(app)?,
                None => conn.revert_last_migration()?,
            };
            match reverted {
                Some(name) => say!("Rolled back migration {name}")?,
                None => say!("No migration to revert")?,
            }
        }
        MigrationCommand::Redo => {
            let redone = match app {
                Some(app) => conn.redo_last_migration_from(app)?,
                None => conn.redo_last_migration()?,
            };
            match redone {
                Some(name) => say!("Rolled back and ran again migration {name}")?,
                None => say!("No migration to redo")?,
            }
        }
        MigrationCommand::Status => {
            let status = match app {
                Some(app) => conn.migration_status_from(app)?,
                None => conn.migration_status()?,
            };
            say!("Migrations:")?;
            for m in status {
                say!("  [{}] {}", if m.applied { "X" } else { " " }, m.name)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
