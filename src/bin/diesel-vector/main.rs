//! `diesel-vector`: see and repair a diesel-vector installation on PostgreSQL or SQLite, and move it
//! from one to the other. A thin layer over the library: every command is one call into
//! `diesel_vector` (`database`, `doctor`, `copy`, `jsonl`, `search`); this file parses arguments and
//! `output.rs` prints.

mod output;

use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use diesel_vector::copy::{self, CopyOptions};
use diesel_vector::database::DatabaseConnection;
use diesel_vector::index::registry;
use diesel_vector::search::{Metric, Search, Strategy};
use diesel_vector::{doctor, jsonl, Vector};

use output::Progress;

/// Operate diesel-vector's fragments and embeddings on PostgreSQL (pgvector) or SQLite (sqlite-vec).
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
    /// Run, revert, redo or list the migrations (like `diesel migration`).
    #[command(subcommand, visible_alias = "migrate")]
    Migration(MigrationCommand),
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
        /// PostgreSQL: build HNSW indexes whatever the registry records.
        #[arg(long)]
        hnsw: bool,
    },
    /// Copy fragments and embeddings between two databases of either backend, then verify them.
    /// Resumable: run it again after an interruption.
    Copy {
        /// The source database URL (an SQLite source is opened read-only).
        #[arg(long)]
        from: String,
        /// The target database URL (migrated first).
        #[arg(long)]
        to: String,
        #[command(flatten)]
        batch: BatchArgs,
    },
    /// Write every fragment with its embeddings as JSON lines (floats bit-exact).
    Export {
        /// The file to write [default: standard output].
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        batch: BatchArgs,
    },
    /// Read JSON lines written by `export` into the database (migrated first).
    Import {
        /// The file to read [default: standard input].
        #[arg(long, short)]
        input: Option<PathBuf>,
        #[command(flatten)]
        batch: BatchArgs,
    },
    /// Generate migrations (see `generate vector-index --help`).
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Print the rows nearest to a vector, from a table with a registered vector index (or the
    /// fragments of a provider and model).
    #[command(group(clap::ArgGroup::new("target").required(true).args(["table", "provider"])))]
    Search {
        /// The table to search (one with a vector index registered by its migration).
        #[arg(long)]
        table: Option<String>,
        /// The vector column, when the table has several indexed ones.
        #[arg(long, requires = "table")]
        column: Option<String>,
        /// diesel-vector's fragments: the embeddings' provider (with --model).
        #[arg(long, requires = "model", conflicts_with_all = ["table", "filters"])]
        provider: Option<String>,
        /// diesel-vector's fragments: the embeddings' model (with --provider).
        #[arg(long, requires = "provider")]
        model: Option<String>,
        /// The query, as a JSON array or pgvector's text form `[0.1,-2,...]`; `@FILE` reads it from a file.
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
        /// Compute every matching row's distance instead of using the index.
        #[arg(long)]
        exact: bool,
        /// Print the results as JSON: an array of {"rank", "id", "distance"}.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum GenerateCommand {
    /// Write a migration that creates a vector index on a table of yours, into both backends' migration
    /// folders (same version and name in each); `diesel migration run` and `diesel-vector migration run`
    /// apply it. Nothing needs sqlite-vec.
    VectorIndex(VectorIndexArgs),
}

#[derive(Debug, clap::Args)]
struct VectorIndexArgs {
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
    /// What SQLite keeps for searches [default: codes; none for sparsevec].
    #[arg(long, value_enum)]
    sqlite_index: Option<SqliteIndexArg>,
    /// The index's name [default: __dv_<table>_<column>]; SQLite names its tables after it.
    #[arg(long)]
    name: Option<String>,
    /// Also add the vector column (nullable) to the existing table.
    #[arg(long)]
    add_column: bool,
    /// PostgreSQL's migration folder.
    #[arg(long, default_value = "migrations_pg")]
    migrations_pg: PathBuf,
    /// SQLite's migration folder.
    #[arg(long, default_value = "migrations_sqlite")]
    migrations_sqlite: PathBuf,
    /// The migration's version, YYYYMMDDHHMMSS [default: now, UTC].
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
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SqliteIndexArg {
    Codes,
    Vec0,
    #[value(name = "codes,vec0")]
    CodesAndVec0,
    None,
}

#[derive(Debug, Subcommand)]
enum MigrationCommand {
    /// Apply every pending migration (checking pgvector first; adopting existing tables).
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
    /// Skip invalid rows (NaN, wrong length, dims not matching, missing fragment) and report them,
    /// instead of stopping.
    #[arg(long)]
    skip_invalid: bool,
}

impl BatchArgs {
    fn options(&self) -> CopyOptions {
        CopyOptions::default().batch_size(self.batch_size as usize).skip_invalid(self.skip_invalid)
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MetricArg {
    Cosine,
    L2,
    L1,
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
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn database_url(cli: &Cli) -> Result<&str> {
    cli.database_url.as_deref().ok_or_else(|| "no database: pass --database-url or set DATABASE_URL".into())
}

fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Migration(command) => {
            let url = database_url(&cli)?;
            // Listing reads only: it must not create an SQLite file.
            let mut conn = match command {
                MigrationCommand::Status => DatabaseConnection::establish_read_only(url)?,
                _ => DatabaseConnection::establish(url)?,
            };
            migration(&mut conn, command)?;
        }
        Command::Doctor { migration_dir, json } => {
            let mut conn = DatabaseConnection::establish_read_only(database_url(&cli)?)?;
            let mut options = doctor::DiagnoseOptions::default();
            if let Some(dir) = migration_dir {
                options = options.migration_dir(dir);
            }
            let report = doctor::diagnose_with(&mut conn, &options)?;
            if *json {
                println!("{}", output::doctor_json(&report));
            } else {
                output::doctor_text(&report);
            }
            if report.needs_action() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Reindex { table, hnsw } => {
            let mut conn = DatabaseConnection::establish(database_url(&cli)?)?;
            let mut options = doctor::ReindexOptions::default().hnsw(*hnsw);
            if let Some(table) = table {
                options = options.table(table);
            }
            for rebuilt in doctor::reindex(&mut conn, &options)? {
                println!("{}", output::reindexed(&rebuilt));
            }
        }
        Command::Copy { from, to, batch } => {
            let mut progress = Progress::new("copy");
            let result = copy::copy(from, to, &batch.options(), &mut |event| progress.copy_event(&event));
            progress.finish();
            match result {
                Ok(report) => output::copy_report(&report),
                Err(copy::CopyError::Verification(report)) => {
                    output::copy_report(&report);
                    return Err(Box::new(copy::CopyError::Verification(report)));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Command::Export { output: path, batch } => {
            let mut conn = DatabaseConnection::establish_read_only(database_url(&cli)?)?;
            let mut out: Box<dyn Write> = match path {
                Some(p) if p.as_os_str() != "-" => Box::new(BufWriter::new(File::create(p)?)),
                _ => Box::new(BufWriter::new(io::stdout().lock())),
            };
            let mut progress = Progress::new("export");
            let report = jsonl::export(&mut conn, &mut out, &batch.options(), &mut |n| progress.count("fragments", n));
            progress.finish();
            out.flush()?;
            output::jsonl_report("exported", &report?);
        }
        Command::Import { input, batch } => {
            let mut conn = DatabaseConnection::establish(database_url(&cli)?)?;
            let mut reader: Box<dyn io::BufRead> = match input {
                Some(p) if p.as_os_str() != "-" => Box::new(BufReader::new(File::open(p)?)),
                _ => Box::new(io::stdin().lock()),
            };
            let mut progress = Progress::new("import");
            let report = jsonl::import(&mut conn, &mut reader, &batch.options(), &mut |n| progress.count("lines", n));
            progress.finish();
            output::jsonl_report("imported", &report?);
        }
        Command::Generate(GenerateCommand::VectorIndex(args)) => generate_vector_index(args)?,
        Command::Search { table, column, provider, model, vector, k, metric, filters, exact, json } => {
            let text = match vector.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?,
                None => vector.clone(),
            };
            let query: Vector = text.parse().map_err(|e| format!("--vector: {e}"))?;
            let strategy = if *exact { Strategy::Exact } else { Strategy::Auto };
            let mut conn = DatabaseConnection::establish(database_url(&cli)?)?;
            if let (Some(provider), Some(model)) = (provider, model) {
                let mut search = Search::new(provider, model, &query).k(*k).strategy(strategy);
                if let Some(metric) = metric {
                    search = search.metric((*metric).into());
                }
                let hits = conn.search(&search)?;
                let ids: Vec<i64> = hits.iter().map(|h| h.fragment_id).collect();
                let fragments = conn.fragments(&ids)?;
                if *json {
                    println!("{}", output::search_json(&hits, &fragments));
                } else {
                    output::search_text(&hits, &fragments, io::stdout().is_terminal());
                }
            } else if let Some(table) = table {
                let specs = conn.indexes()?;
                let spec = match registry::find(&specs, table, column.as_deref()) {
                    Ok(spec) => spec,
                    Err(e) if !conn.has_table(table)? => {
                        return Err(format!("table {table} does not exist in this database ({e})").into())
                    }
                    Err(e) => {
                        return Err(format!(
                            "{e}; register the column's index with `diesel-vector generate vector-index --table \
                             {table} --column COLUMN --dims N` and apply the migration"
                        )
                        .into())
                    }
                };
                let mut search = spec.search(&query).k(*k).strategy(strategy);
                if let Some(metric) = metric {
                    search = search.metric((*metric).into());
                }
                for filter in filters {
                    let (column, value) =
                        filter.split_once('=').ok_or_else(|| format!("--where {filter:?}: expected COLUMN=VALUE"))?;
                    search = search.filter_eq(column, value);
                }
                let hits = conn.search_index(&search)?;
                if *json {
                    println!("{}", output::hits_json(&hits));
                } else {
                    output::hits_text(spec, &hits);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn generate_vector_index(args: &VectorIndexArgs) -> Result<()> {
    use diesel_vector::index::{generate, Element, IndexSpec, PgIndex, SqliteIndex};
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
        });
    if let Some(metric) = args.metric {
        builder = builder.metric(metric.into());
    }
    if let Some(sqlite) = args.sqlite_index {
        builder = builder.sqlite_index(match sqlite {
            SqliteIndexArg::Codes => SqliteIndex::CODES,
            SqliteIndexArg::Vec0 => SqliteIndex::VEC0,
            SqliteIndexArg::CodesAndVec0 => SqliteIndex::CODES_AND_VEC0,
            SqliteIndexArg::None => SqliteIndex::NONE,
        });
    }
    if let Some(name) = &args.name {
        builder = builder.name(name);
    }
    let spec = builder.build()?;
    let migration = generate::render(&spec, &generate::Options::default().add_column(args.add_column));
    let version = args.migration_version.clone().unwrap_or_else(generate::version_now);
    let (pg, sqlite) = generate::write(&migration, &version, &args.migrations_pg, &args.migrations_sqlite)?;
    println!("Created {}", pg.display());
    println!("Created {}", sqlite.display());
    Ok(())
}

fn migration(conn: &mut DatabaseConnection, command: &MigrationCommand) -> Result<()> {
    match command {
        MigrationCommand::Run => {
            let applied = conn.run_pending_migrations()?;
            if applied.is_empty() {
                println!("No pending migrations");
            }
            for m in applied {
                println!("{} migration {}", output::outcome(m.outcome), m.name);
            }
        }
        MigrationCommand::Revert => match conn.revert_last_migration()? {
            Some(name) => println!("Rolled back migration {name}"),
            None => println!("No migration to revert"),
        },
        MigrationCommand::Redo => match conn.redo_last_migration()? {
            Some(name) => println!("Rolled back and ran again migration {name}"),
            None => println!("No migration to redo"),
        },
        MigrationCommand::Status => {
            println!("Migrations:");
            for m in conn.migration_status()? {
                println!("  [{}] {}", if m.applied { "X" } else { " " }, m.name);
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
