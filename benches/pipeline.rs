//! The whole pipeline (plan, fetch, validate, aggregate) over the synthetic source at 1 k,
//! 100 k and 1 M resources. Peak memory is measured by `tagguard bench` (docs/BENCHMARKS.md).

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tagguard::config::Config;
use tagguard::engine::{EngineHandle, ScanRequest};
use tagguard::policy::default_policy;
use tagguard::source::{ResourceSource, SyntheticSource, SyntheticSpec};

/// The allocator the `tagguard` binary uses, so the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn pipeline(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let policy = Arc::new(default_policy());
    let engine = runtime
        .block_on(EngineHandle::start(Config::default()))
        .expect("engine");
    let mut group = c.benchmark_group("pipeline");
    for size in [1_000u64, 100_000, 1_000_000] {
        let source: Arc<dyn ResourceSource> = Arc::new(
            SyntheticSource::new(SyntheticSpec { size, seed: 42 }, policy.clone()).expect("estate"),
        );
        group.throughput(Throughput::Elements(size));
        if size >= 100_000 {
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(if size >= 1_000_000 { 30 } else { 10 }));
        }
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.to_async(&runtime).iter(|| {
                let request = ScanRequest::new(source.clone(), policy.clone());
                let engine = engine.clone();
                async move { engine.scan(request).await.expect("scan") }
            })
        });
    }
    group.finish();
    runtime.block_on(engine.shutdown());
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
