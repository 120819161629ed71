//! What tool results link to instead of flooding a model's context: the scans tools answered
//! from and the reports they rendered, held in memory (the newest few, bounded) under stable
//! URIs, and read back through MCP's `resources/read` ([`super::resources`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::domain::ScanResult;

/// Scans kept: the newest, and at most this many violations over all of them (a scan of a
/// million resources holds hundreds of thousands).
const SCANS_KEPT: usize = 8;
const VIOLATIONS_KEPT: usize = 2_000_000;
/// Reports kept, the newest.
const REPORTS_KEPT: usize = 32;

/// A rendered report.
#[derive(Debug)]
pub struct ShelvedReport {
    /// Its id (`report-…`).
    pub id: String,
    /// `json`, `markdown`, `csv` or `html`.
    pub format: &'static str,
    /// Its media type.
    pub mime_type: &'static str,
    /// The text.
    pub text: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// The scan it reports on.
    pub scan_id: String,
}

impl ShelvedReport {
    /// `tagguard://reports/{id}`.
    pub fn uri(&self) -> String {
        format!("tagguard://reports/{}", self.id)
    }
}

/// The shelf. Cheap to share (`Arc`).
#[derive(Default)]
pub struct Shelf {
    scans: Mutex<VecDeque<Arc<ScanResult>>>,
    reports: Mutex<VecDeque<Arc<ShelvedReport>>>,
}

/// `tagguard://scans/{id}`.
pub fn scan_uri(scan_id: &str) -> String {
    format!("tagguard://scans/{scan_id}")
}

/// `tagguard://scans/{id}/violations`.
pub fn violations_uri(scan_id: &str) -> String {
    format!("tagguard://scans/{scan_id}/violations")
}

impl Shelf {
    /// Keeps `result` (once per scan id), dropping the oldest past the bounds.
    pub fn put_scan(&self, result: &Arc<ScanResult>) {
        let mut scans = self
            .scans
            .lock()
            .expect("the shelf's lock is never poisoned");
        if let Some(at) = scans
            .iter()
            .position(|s| s.meta.scan_id == result.meta.scan_id)
        {
            scans.remove(at);
        }
        scans.push_back(result.clone());
        while scans.len() > SCANS_KEPT
            || (scans.len() > 1
                && scans
                    .iter()
                    .map(|s| s.tally.violations.len())
                    .sum::<usize>()
                    > VIOLATIONS_KEPT)
        {
            scans.pop_front();
        }
    }

    /// The kept scan with this id (`scan-…`).
    pub fn scan(&self, scan_id: &str) -> Option<Arc<ScanResult>> {
        let scans = self
            .scans
            .lock()
            .expect("the shelf's lock is never poisoned");
        scans
            .iter()
            .rev()
            .find(|s| s.meta.scan_id.to_string() == scan_id)
            .cloned()
    }

    /// The kept scans, newest first.
    pub fn scans(&self) -> Vec<Arc<ScanResult>> {
        let scans = self
            .scans
            .lock()
            .expect("the shelf's lock is never poisoned");
        scans.iter().rev().cloned().collect()
    }

    /// Keeps a rendered report and returns it.
    pub fn put_report(
        &self,
        format: &'static str,
        mime_type: &'static str,
        text: String,
        scan_id: String,
    ) -> Arc<ShelvedReport> {
        let report = Arc::new(ShelvedReport {
            id: format!("report-{}", uuid::Uuid::new_v4().simple()),
            format,
            mime_type,
            text,
            created_at: Utc::now(),
            scan_id,
        });
        let mut reports = self
            .reports
            .lock()
            .expect("the shelf's lock is never poisoned");
        reports.push_back(report.clone());
        while reports.len() > REPORTS_KEPT {
            reports.pop_front();
        }
        report
    }

    /// The kept report with this id.
    pub fn report(&self, id: &str) -> Option<Arc<ShelvedReport>> {
        let reports = self
            .reports
            .lock()
            .expect("the shelf's lock is never poisoned");
        reports.iter().find(|r| r.id == id).cloned()
    }

    /// The kept reports, newest first.
    pub fn reports(&self) -> Vec<Arc<ShelvedReport>> {
        let reports = self
            .reports
            .lock()
            .expect("the shelf's lock is never poisoned");
        reports.iter().rev().cloned().collect()
    }
}
