//! Benchmarks for diesel-vector. The workloads live here so that the criterion bench
//! (`cargo bench -p diesel-vector-bench`) and the report (`scripts/bench-codec.sh`) time the same code.
#![deny(unsafe_code)]

pub mod copy;
pub mod cpu;
pub mod embeddings;
pub mod environment;
pub mod fresh;
pub mod harness;
pub mod load;
pub mod raw_sqlite;
pub mod rounds;
pub mod workloads;
