//! Policy validation throughput on one core: the hot loop of every scan, alone and with the
//! batch's tally (what a validator worker does with a page).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tagguard::domain::{Resource, RunKey, ScanScope, TallyOptions};
use tagguard::engine::validate_batch;
use tagguard::policy::default_policy;
use tagguard::source::{SyntheticSource, SyntheticSpec};

/// The allocator the `tagguard` binary uses, so the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every resource of a synthetic estate, in the order the engine reads them.
fn resources(size: u64) -> Vec<Resource> {
    let policy = Arc::new(default_policy());
    SyntheticSource::new(SyntheticSpec { size, seed: 42 }, policy)
        .expect("estate")
        .resources(&ScanScope::default())
}

fn validation(c: &mut Criterion) {
    let policy = default_policy();
    let resources = resources(100_000);
    let mut group = c.benchmark_group("validation");
    group.throughput(Throughput::Elements(resources.len() as u64));
    group.bench_function("validate_100k_resources", |b| {
        let mut findings = Vec::with_capacity(16);
        b.iter(|| {
            let mut count = 0usize;
            for r in &resources {
                findings.clear();
                policy.validate_into(&r.resource_type, &r.tags, &mut findings);
                count += findings.len();
            }
            black_box(count)
        })
    });
    // One page, as the pipeline validates it: just fetched, so in cache.
    let page = &resources[..1_000];
    group.throughput(Throughput::Elements(page.len() as u64));
    group.bench_function("validate_page_of_1000", |b| {
        let mut findings = Vec::with_capacity(16);
        b.iter(|| {
            let mut count = 0usize;
            for r in page {
                findings.clear();
                policy.validate_into(&r.resource_type, &r.tags, &mut findings);
                count += findings.len();
            }
            black_box(count)
        })
    });
    // The page as a validator takes it: validated and observed into the batch's tally.
    let options = TallyOptions::default();
    let run = RunKey::default();
    group.throughput(Throughput::Elements(page.len() as u64));
    group.bench_function("validate_batch_of_1000", |b| {
        let mut scratch = Vec::with_capacity(16);
        b.iter_batched(
            || page.to_vec(),
            |batch| black_box(validate_batch(&policy, &options, &run, batch, &mut scratch)),
            criterion::BatchSize::SmallInput,
        )
    });
    // The compliant path alone (no finding to allocate), on a page of compliant resources.
    let compliant: Vec<Resource> = resources
        .iter()
        .filter(|r| policy.validate(&r.resource_type, &r.tags).is_empty())
        .take(1_000)
        .cloned()
        .collect();
    group.throughput(Throughput::Elements(compliant.len() as u64));
    group.bench_function("validate_compliant_page", |b| {
        let mut findings = Vec::with_capacity(16);
        b.iter(|| {
            for r in &compliant {
                findings.clear();
                policy.validate_into(&r.resource_type, &r.tags, &mut findings);
            }
            black_box(findings.len())
        })
    });
    group.finish();
}

criterion_group!(benches, validation);
criterion_main!(benches);
