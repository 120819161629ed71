//! MCP resources: the policy, scans, their violations (paged) and rendered reports, under
//! `tagguard://` URIs. Scans come from the [`Shelf`](super::shelf::Shelf) (the ones tools
//! answered from in this server's life) and, for older ones, from the store, which keeps a
//! summary and the findings of every recorded scan.

use serde::Serialize;
use serde_json::{Value, json};

use super::ToolEnv;
use super::shelf::{scan_uri, violations_uri};
use crate::domain::{ScanResult, ViolationRecord};

/// Violations per page of `…/violations`.
pub const VIOLATIONS_PER_PAGE: usize = 500;
/// Entries per page of `resources/list`.
pub const LIST_PAGE: usize = 50;

/// Why a resource could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResourceError {
    /// No resource has this URI (MCP's -32002).
    #[error("{0}")]
    NotFound(String),
    /// The URI is malformed (JSON-RPC's -32602).
    #[error("{0}")]
    Invalid(String),
}

/// One `resources/list` entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceEntry {
    /// The URI.
    pub uri: String,
    /// A short name.
    pub name: String,
    /// A title for people.
    pub title: String,
    /// What it holds.
    pub description: String,
    /// Its media type.
    pub mime_type: &'static str,
    /// Its size in bytes, when known without rendering it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
}

/// The URI templates of `resources/templates/list`.
pub fn templates() -> Vec<Value> {
    vec![
        json!({
            "uriTemplate": "tagguard://scans/{scan_id}",
            "name": "scan",
            "title": "Scan result",
            "description": "A scan's score, counts per type, tag, account and region, worst offenders and issues (no violation list: see …/violations).",
            "mimeType": "application/json",
        }),
        json!({
            "uriTemplate": "tagguard://scans/{scan_id}/violations{?page}",
            "name": "scan-violations",
            "title": "Scan violations",
            "description": format!("Every violation of a scan, {VIOLATIONS_PER_PAGE} per page (page from 1); each page names the next."),
            "mimeType": "application/json",
        }),
        json!({
            "uriTemplate": "tagguard://reports/{report_id}",
            "name": "report",
            "title": "Compliance report",
            "description": "A report generate_compliance_report rendered (JSON, Markdown, CSV or HTML).",
        }),
    ]
}

/// The concrete resources, newest first, a page at a time: `(entries, next cursor)`.
pub fn list(
    env: &ToolEnv,
    cursor: Option<&str>,
) -> Result<(Vec<ResourceEntry>, Option<String>), ResourceError> {
    let start = match cursor {
        None => 0,
        Some(c) => c.parse::<usize>().map_err(|_| {
            ResourceError::Invalid(format!("'{c}' is not a cursor this server gave"))
        })?,
    };
    let mut all = vec![ResourceEntry {
        uri: "tagguard://policy".to_string(),
        name: "policy".to_string(),
        title: "Tagging policy".to_string(),
        description: "The tagging policy in effect, as JSON.".to_string(),
        mime_type: "application/json",
        size: None,
    }];
    for scan in env.shelf.scans() {
        let id = scan.meta.scan_id.to_string();
        all.push(ResourceEntry {
            uri: scan_uri(&id),
            name: id.clone(),
            title: format!("Scan {id}"),
            description: format!(
                "Scan of {} at {}: score {}, {} resources, {} non-compliant.",
                scan.meta.source,
                scan.meta.scan_timestamp.to_rfc3339(),
                crate::report::percent(scan.totals.compliance_score),
                scan.totals.total_resources,
                scan.totals.non_compliant_resources
            ),
            mime_type: "application/json",
            size: None,
        });
        all.push(ResourceEntry {
            uri: violations_uri(&id),
            name: format!("{id}-violations"),
            title: format!("Violations of scan {id}"),
            description: format!(
                "{} violations, {VIOLATIONS_PER_PAGE} per page.",
                scan.tally.violations.len()
            ),
            mime_type: "application/json",
            size: None,
        });
    }
    for report in env.shelf.reports() {
        all.push(ResourceEntry {
            uri: report.uri(),
            name: report.id.clone(),
            title: format!("Compliance report ({})", report.format),
            description: format!(
                "Report on {} made at {}.",
                report.scan_id,
                report.created_at.to_rfc3339()
            ),
            mime_type: report.mime_type,
            size: Some(report.text.len()),
        });
    }
    if start > all.len() {
        return Err(ResourceError::Invalid(
            "the cursor is past the end".to_string(),
        ));
    }
    let end = (start + LIST_PAGE).min(all.len());
    let next = (end < all.len()).then(|| end.to_string());
    Ok((all.drain(start..end).collect(), next))
}

/// The contents of `uri`, as `resources/read`'s `contents`.
pub async fn read(env: &ToolEnv, uri: &str) -> Result<Vec<Value>, ResourceError> {
    let not_found = || {
        ResourceError::NotFound(format!(
            "no resource '{uri}'; resources/list and resources/templates/list say what there is"
        ))
    };
    let rest = uri.strip_prefix("tagguard://").ok_or_else(not_found)?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let parts: Vec<&str> = path.split('/').collect();
    let text =
        |mime: &str, body: String| vec![json!({ "uri": uri, "mimeType": mime, "text": body })];
    match parts.as_slice() {
        ["policy"] => Ok(text(
            "application/json",
            serde_json::to_string_pretty(&env.policy().document).expect("the policy serialises"),
        )),
        ["reports", id] => {
            let report = env.shelf.report(id).ok_or_else(|| {
                ResourceError::NotFound(format!(
                    "no report '{id}': reports are kept in memory, the newest 32; generate_compliance_report makes a new one"
                ))
            })?;
            Ok(text(report.mime_type, report.text.clone()))
        }
        ["scans", id] => match env.shelf.scan(id) {
            Some(scan) => Ok(text("application/json", scan_document(&scan))),
            None => stored_scan(env, id, None)
                .await?
                .map(|body| text("application/json", body))
                .ok_or_else(not_found),
        },
        ["scans", id, "violations"] => {
            let page = page_of(query)?;
            match env.shelf.scan(id) {
                Some(scan) => Ok(text("application/json", violations_page(&scan, page)?)),
                None => stored_scan(env, id, Some(page))
                    .await?
                    .map(|body| text("application/json", body))
                    .ok_or_else(not_found),
            }
        }
        _ => Err(not_found()),
    }
}

fn page_of(query: &str) -> Result<usize, ResourceError> {
    let mut page = 1;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("page", n)) => {
                page = n.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ResourceError::Invalid(format!("page '{n}' is not a page number (from 1)"))
                })?;
            }
            _ => {
                return Err(ResourceError::Invalid(format!(
                    "'{pair}' is not a parameter of this resource: only page=N"
                )));
            }
        }
    }
    Ok(page)
}

/// A scan without its violation list, and where the list is.
fn scan_document(scan: &ScanResult) -> String {
    let id = scan.meta.scan_id.to_string();
    let mut value = serde_json::to_value(scan).expect("a scan result serialises");
    if let Some(tally) = value.get_mut("tally").and_then(Value::as_object_mut) {
        tally.remove("violations");
        tally.remove("violation_runs");
    }
    value["violations_count"] = json!(scan.tally.violations.len());
    value["violations_uri"] = json!(violations_uri(&id));
    serde_json::to_string_pretty(&value).expect("JSON serialises")
}

fn page_document(
    id: &str,
    page: usize,
    total: usize,
    items: Vec<Value>,
) -> Result<String, ResourceError> {
    let pages = total.div_ceil(VIOLATIONS_PER_PAGE).max(1);
    if page > pages {
        return Err(ResourceError::NotFound(format!(
            "scan {id} has {pages} page(s) of violations; there is no page {page}"
        )));
    }
    let next = (page < pages).then(|| format!("{}?page={}", violations_uri(id), page + 1));
    Ok(serde_json::to_string_pretty(&json!({
        "scan_id": id,
        "page": page,
        "pages": pages,
        "violations_total": total,
        "violations": items,
        "next": next,
    }))
    .expect("JSON serialises"))
}

fn violations_page(scan: &ScanResult, page: usize) -> Result<String, ResourceError> {
    let id = scan.meta.scan_id.to_string();
    let items = scan
        .violations()
        .skip((page - 1) * VIOLATIONS_PER_PAGE)
        .take(VIOLATIONS_PER_PAGE)
        .map(|v| serde_json::to_value(ViolationRecord::from(v)).expect("a violation serialises"))
        .collect();
    page_document(&id, page, scan.tally.violations.len(), items)
}

/// A recorded scan from the store: its summary, or (with `page`) a page of its findings.
async fn stored_scan(
    env: &ToolEnv,
    id: &str,
    page: Option<usize>,
) -> Result<Option<String>, ResourceError> {
    let Some(store) = env.store() else {
        return Ok(None);
    };
    let Some(number) = id
        .strip_prefix("scan-")
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
    else {
        return Err(ResourceError::Invalid(format!(
            "'{id}' is not a scan id (scan-<16 hex digits>)"
        )));
    };
    let since =
        chrono::Utc::now() - chrono::Duration::days(crate::store::history::MAX_DAYS_BACK.into());
    let Ok(scans) = store.scans_since(since).await else {
        return Ok(None);
    };
    let Some(summary) = scans.into_iter().find(|s| s.scan_id == number) else {
        return Ok(None);
    };
    match page {
        None => {
            let mut value = serde_json::to_value(&summary).expect("a summary serialises");
            value["scan_id"] = json!(id);
            value["violations_uri"] = json!(violations_uri(id));
            value["note"] = json!(
                "a recorded scan: the store keeps its counts and findings, not resource details"
            );
            Ok(Some(
                serde_json::to_string_pretty(&value).expect("JSON serialises"),
            ))
        }
        Some(page) => {
            let findings = store.findings(number).await.ok().flatten().ok_or_else(|| {
                ResourceError::NotFound(format!(
                    "the findings of scan {id} are no longer kept (the store keeps them for the latest scans of each scope)"
                ))
            })?;
            let items = findings
                .iter()
                .skip((page - 1) * VIOLATIONS_PER_PAGE)
                .take(VIOLATIONS_PER_PAGE)
                .map(|f| serde_json::to_value(f).expect("a finding serialises"))
                .collect();
            page_document(id, page, findings.len(), items).map(Some)
        }
    }
}
