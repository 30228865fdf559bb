//! Benchmarks for diesel-vector. The codec workloads live here so that the criterion bench
//! (`cargo bench -p diesel-vector-bench`) and the report (`scripts/bench-codec.sh`) time the same code;
//! the database workloads (KNN, migrations) are run by `scripts/bench-db.sh`.
#![deny(unsafe_code)]

pub mod copy;
pub mod cpu;
pub mod data;
pub mod db_harness;
pub mod embeddings;
pub mod environment;
pub mod fresh;
pub mod harness;
pub mod knn;
pub mod load;
pub mod migrate;
pub mod pgdb;
pub mod raw_sqlite;
pub mod rounds;
pub mod sqlite_index;
pub mod type_workloads;
pub mod workloads;
