//! Criterion benchmarks of the codecs: `cargo bench -p diesel-vector-bench --bench codec`.
//!
//! Criterion gives careful per-contender estimates but no ratios between contenders; for those (and the
//! issue's bars) run `scripts/bench-codec.sh`, which times the same workloads interleaved.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use diesel_vector_bench::workloads::{self, Inputs, DIMS};

fn codec(c: &mut Criterion) {
    let inputs = Inputs::new(DIMS);
    workloads::check_outputs(&inputs).expect("contenders agree");
    for workload in workloads::workloads(&inputs) {
        let mut group = c.benchmark_group(workload.name);
        group.throughput(Throughput::Bytes(workload.bytes as u64));
        for mut contender in workload.contenders {
            group.bench_function(contender.name, |b| b.iter(&mut contender.run));
        }
        group.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
