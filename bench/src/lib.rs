//! Benchmarks for diesel-vector. The workloads live here so that the criterion bench
//! (`cargo bench -p diesel-vector-bench`) and the report (`scripts/bench-codec.sh`) time the same code.
#![deny(unsafe_code)]

pub mod environment;
pub mod harness;
pub mod workloads;
