//! Embedding tagguard's engine in an ops tool: scan an estate, watch progress, act on the score.
//!
//! Run with `cargo run --example embed`.

use std::sync::Arc;

use tagguard::config::Config;
use tagguard::engine::{Analyses, EngineHandle, ScanRequest};
use tagguard::policy::default_policy;
use tagguard::source::{SyntheticSource, SyntheticSpec};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = Arc::new(default_policy());
    let source = Arc::new(SyntheticSource::new(
        SyntheticSpec {
            size: 50_000,
            seed: 7,
        },
        policy.clone(),
    )?);
    let engine = EngineHandle::start(Config::default()).await?;
    // Cost sums ride on the same pass over the resources.
    let request = ScanRequest::new(source, policy).with_analyses(Analyses {
        cost: true,
        ..Analyses::default()
    });
    let ticket = engine.start_scan(request).await?;
    let mut progress = ticket.progress();
    let watcher = tokio::spawn(async move {
        while progress.changed().await.is_ok() {
            let p = progress.borrow_and_update().clone();
            eprint!("\r{} resources scanned", p.resources_scanned);
        }
    });
    let result = ticket.result().await?;
    watcher.abort();
    println!(
        "\n{:.1}% compliant; {} errors",
        result.totals.compliance_score * 100.0,
        result.totals.error_count
    );
    if let Some(cost) = &result.tally.cost {
        let gap = cost.non_compliant();
        println!(
            "non-compliant resources cost {}/month ({} of unknown cost)",
            gap.monthly_cost.display(),
            gap.unknown
        );
    }
    engine.shutdown().await;
    Ok(())
}
