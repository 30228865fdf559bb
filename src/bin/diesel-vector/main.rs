//! `diesel-vector`: see and repair a diesel-vector installation on PostgreSQL or SQLite, and move it
//! from one to the other. A thin layer over the library: every command is one call into
//! `diesel_vector` (`database`, `doctor`, `copy`, `jsonl`, `search`); this file parses arguments and
//! `output.rs` prints.

mod files;
mod output;

use std::fs::File;
use std::io::{self, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use diesel_vector::copy::{self, CopyOptions};
use diesel_vector::database::DatabaseConnection;
use diesel_vector::search::{Metric, Search};
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
    /// Report the backend, the vector extension, migrations, foreign keys, rows and the vector index,
    /// with a verdict; exits 1 when something needs action. Reads only.
    Doctor {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the vector index: SQLite's vec0 table; on PostgreSQL ivfflat sized for the rows.
    Reindex {
        /// PostgreSQL: build an hnsw index (vector_cosine_ops) under the same name instead of ivfflat.
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
    /// Print the fragments nearest to a vector.
    Search {
        /// The embeddings' provider.
        #[arg(long)]
        provider: String,
        /// The embeddings' model.
        #[arg(long)]
        model: String,
        /// The query, in pgvector's text form `[0.1,-2,...]`; `@FILE` reads it from a file (at most 512 KiB:
        /// a vector has at most 16000 numbers).
        #[arg(long, allow_hyphen_values = true)]
        vector: String,
        /// How many neighbours.
        #[arg(short, default_value_t = 10)]
        k: usize,
        /// The distance.
        #[arg(long, value_enum, default_value_t = MetricArg::Cosine)]
        metric: MetricArg,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
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
}

impl From<MetricArg> for Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::Cosine => Metric::Cosine,
            MetricArg::L2 => Metric::L2,
            MetricArg::L1 => Metric::L1,
            MetricArg::InnerProduct => Metric::InnerProduct,
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", output::escape_keeping_lines(&output::error_text(&*e)));
            ExitCode::FAILURE
        }
    }
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
        Command::Migration(command) => {
            let url = database_url(&cli)?;
            // Listing reads only: it must not create an SQLite file.
            let mut conn = match command {
                MigrationCommand::Status => DatabaseConnection::establish_read_only(url)?,
                _ => DatabaseConnection::establish(url)?,
            };
            migration(&mut conn, command)?;
        }
        Command::Doctor { json } => {
            let mut conn = DatabaseConnection::establish_read_only(database_url(&cli)?)?;
            let report = doctor::diagnose(&mut conn)?;
            if *json {
                println!("{}", output::doctor_json(&report));
            } else {
                output::doctor_text(&report);
            }
            if report.needs_action() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Reindex { hnsw } => {
            let mut conn = DatabaseConnection::establish_existing(database_url(&cli)?)?;
            println!("{}", output::reindexed(doctor::reindex(&mut conn, *hnsw)?));
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
            let url = database_url(&cli)?;
            let to_file = path.as_ref().filter(|p| p.as_os_str() != "-");
            if let Some(p) = to_file {
                files::refuse_database_as_output(url, p)?;
            }
            let mut conn = DatabaseConnection::establish_read_only(url)?;
            let mut progress = Progress::new("export");
            let mut export = |out: &mut dyn Write| {
                let report = jsonl::export(&mut conn, out, &batch.options(), &mut |n| progress.count("fragments", n));
                progress.finish();
                Ok::<_, Box<dyn std::error::Error>>(report?)
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
            output::jsonl_report("exported", &report);
        }
        Command::Import { input, batch } => {
            // The input first: a file that cannot be read must not leave anything behind.
            let mut reader: Box<dyn io::BufRead> = match input {
                Some(p) if p.as_os_str() != "-" => {
                    Box::new(BufReader::new(File::open(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?))
                }
                _ => Box::new(io::stdin().lock()),
            };
            let mut conn = DatabaseConnection::establish_existing(database_url(&cli)?)?;
            let mut progress = Progress::new("import");
            let report = jsonl::import(&mut conn, &mut reader, &batch.options(), &mut |n| progress.count("lines", n));
            progress.finish();
            output::jsonl_report("imported", &report?);
        }
        Command::Search { provider, model, vector, k, metric, json } => {
            let text = match vector.strip_prefix('@') {
                Some(path) => files::read_query(path.as_ref())?,
                None => vector.clone(),
            };
            let query: Vector = text.parse()?;
            let mut conn = DatabaseConnection::establish_existing(database_url(&cli)?)?;
            let hits = conn.search(&Search::new(provider, model, &query).k(*k).metric((*metric).into()))?;
            let ids: Vec<i64> = hits.iter().map(|h| h.fragment_id).collect();
            let fragments = conn.fragments(&ids)?;
            if *json {
                println!("{}", output::search_json(&hits, &fragments));
            } else {
                output::search_text(&hits, &fragments, io::stdout().is_terminal());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
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
