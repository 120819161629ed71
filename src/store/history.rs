//! Compliance over time, computed from stored scans: periods (day, week, month), the trend,
//! and the drift between two scans. Pure functions over [`ScanSummary`] and [`StoredFinding`].

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Datelike, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use super::{ScanSummary, Store, StoreError, StoredFinding};
use crate::domain::{ComplianceTotals, ScanScope, Severity, SeverityFilter, ViolationType};

/// The length of a history period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GroupBy {
    /// Calendar days (UTC).
    #[default]
    Day,
    /// ISO weeks (Monday to Sunday, UTC).
    Week,
    /// Calendar months (UTC).
    Month,
}

crate::domain::string_enum!(GroupBy "a period" {
    Day => "day",
    Week => "week",
    Month => "month",
});

/// The label of the period holding `time`: `2026-11-24`, `2026-W48` or `2026-11`.
pub fn period_of(time: DateTime<Utc>, by: GroupBy) -> String {
    match by {
        GroupBy::Day => time.format("%Y-%m-%d").to_string(),
        GroupBy::Week => {
            let week = time.iso_week();
            format!("{}-W{:02}", week.year(), week.week())
        }
        GroupBy::Month => time.format("%Y-%m").to_string(),
    }
}

/// One period of history: the state at its last scan, and how many scans it saw.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct HistoryPoint {
    /// The period: `2026-11-24`, `2026-W48` or `2026-11`.
    pub period: String,
    /// Scans in the period.
    pub scans: u32,
    /// When the period's last scan ran.
    pub last_scan_at: DateTime<Utc>,
    /// Score and counts of the period's last scan.
    #[serde(flatten)]
    pub totals: ComplianceTotals,
    /// Score per resource type.
    pub score_by_resource_type: BTreeMap<String, f64>,
    /// Violations (missing or invalid) per tag.
    pub violations_by_tag: BTreeMap<String, u64>,
    /// Monthly cost of the period's last scan's non-compliant resources (the sum of the known
    /// costs, how many had none, and where the known ones came from); null when that scan did
    /// not sum costs.
    pub non_compliant_cost: Option<crate::domain::CostSums>,
    /// The cost-attribution gap recorded with the period's last scan (last full month, from
    /// billing); null when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_gap: Option<crate::domain::costing::GapRecord>,
}

/// Which way the attribution gap moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapDirection {
    /// The gap's share of spend fell by more than half a point.
    Narrowing,
    /// It rose by more than half a point.
    Widening,
    /// Within half a point, or fewer than two gaps recorded.
    Stable,
}

crate::domain::string_enum!(GapDirection "a gap direction" {
    Narrowing => "narrowing",
    Widening => "widening",
    Stable => "stable",
});

/// The gap's trend over the periods whose last scan recorded one.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct GapTrend {
    /// `narrowing`, `widening` or `stable` (earliest recorded gap against the latest).
    pub direction: GapDirection,
    /// The earliest recorded gap, in percent of usage spend.
    pub first_percent: f64,
    /// The latest, in percent.
    pub last_percent: f64,
    /// `last − first`, in percentage points.
    pub change_points: f64,
    /// Periods with a gap recorded.
    pub periods: u32,
}

/// The trend of the gaps recorded in `points` that compare with the latest (the same metric,
/// billing and measured tags); `None` when none was recorded.
pub fn gap_trend(points: &[HistoryPoint]) -> Option<GapTrend> {
    let recorded: Vec<&crate::domain::costing::GapRecord> = points
        .iter()
        .filter_map(|p| p.cost_gap.as_ref())
        .filter(|g| g.gap_percent.is_some())
        .collect();
    let latest = *recorded.last()?;
    let gaps: Vec<f64> = recorded
        .iter()
        .filter(|g| {
            g.metric == latest.metric
                && g.data_source == latest.data_source
                && g.measured_tags == latest.measured_tags
        })
        .filter_map(|g| g.gap_percent)
        .collect();
    let (first, last) = (*gaps.first()?, *gaps.last()?);
    let change = ((last - first) * 100.0).round() / 100.0;
    Some(GapTrend {
        direction: if gaps.len() < 2 || change.abs() <= STABLE_BAND * 100.0 {
            GapDirection::Stable
        } else if change < 0.0 {
            GapDirection::Narrowing
        } else {
            GapDirection::Widening
        },
        first_percent: first,
        last_percent: last,
        change_points: change,
        periods: gaps.len() as u32,
    })
}

/// The direction of compliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    /// The score rose by more than [`STABLE_BAND`].
    Improving,
    /// The score fell by more than [`STABLE_BAND`].
    Declining,
    /// Within [`STABLE_BAND`], or fewer than two periods.
    Stable,
}

crate::domain::string_enum!(Trend "a trend" {
    Improving => "improving",
    Declining => "declining",
    Stable => "stable",
});

/// Score changes within half a percentage point are noise, not a trend.
pub const STABLE_BAND: f64 = 0.005;

/// Groups scans (in any order) into periods, oldest first; each period shows its last scan.
pub fn group(scans: &[ScanSummary], by: GroupBy) -> Vec<HistoryPoint> {
    let mut periods: BTreeMap<String, (u32, &ScanSummary)> = BTreeMap::new();
    for scan in scans {
        let entry = periods
            .entry(period_of(scan.scanned_at, by))
            .or_insert((0, scan));
        entry.0 += 1;
        if (scan.scanned_at, scan.scan_id) >= (entry.1.scanned_at, entry.1.scan_id) {
            entry.1 = scan;
        }
    }
    periods
        .into_iter()
        .map(|(period, (count, last))| HistoryPoint {
            period,
            scans: count,
            last_scan_at: last.scanned_at,
            totals: last.totals,
            score_by_resource_type: last
                .by_resource_type
                .iter()
                .map(|(t, c)| {
                    let score = c.score();
                    (t.to_string(), score)
                })
                .collect(),
            violations_by_tag: last
                .by_tag
                .iter()
                .map(|(t, c)| (t.clone(), c.missing + c.invalid))
                .collect(),
            non_compliant_cost: last.non_compliant_cost,
            cost_gap: last.cost_gap.clone(),
        })
        .collect()
}

/// The trend from the earliest to the latest period, and the score change (latest − earliest,
/// in score units: 0.05 is five percentage points).
pub fn trend(points: &[HistoryPoint]) -> (Trend, f64) {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return (Trend::Stable, 0.0);
    };
    let change = last.totals.compliance_score - first.totals.compliance_score;
    let trend = if points.len() < 2 || change.abs() <= STABLE_BAND {
        Trend::Stable
    } else if change > 0.0 {
        Trend::Improving
    } else {
        Trend::Declining
    };
    (trend, change)
}

/// How a tag changed between two scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Was missing, now present.
    Added,
    /// Was present, now missing.
    Removed,
    /// Its non-compliant value changed, or it became valid or invalid.
    Changed,
}

crate::domain::string_enum!(ChangeKind "a change" {
    Added => "added",
    Removed => "removed",
    Changed => "changed",
});

/// A tag of a resource whose state changed between two scans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TagChange {
    /// The resource.
    pub resource_arn: String,
    /// The tag.
    pub tag: String,
    /// `added` (was missing, now present), `removed` (was present, now missing) or `changed`
    /// (its non-compliant value changed, or it became valid or invalid).
    pub change: ChangeKind,
    /// The value before, when known.
    pub before: Option<String>,
    /// The value now, when known.
    pub after: Option<String>,
}

/// What changed between two scans of the same scope, as far as their findings show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct Drift {
    /// Resources with errors now that had none before (new, or broken since).
    pub became_non_compliant: Vec<String>,
    /// Resources with errors before that have none now (fixed, or deleted).
    pub no_longer_non_compliant: Vec<String>,
    /// Tags that changed on resources seen with violations in either scan.
    pub tag_changes: Vec<TagChange>,
}

/// Per (resource, tag): the violation and the value seen.
type TagStates<'a> = HashMap<(&'a str, &'a str), (ViolationType, Option<&'a str>)>;

/// The error findings' states, and the resources they concern.
fn tag_states(findings: &[StoredFinding]) -> (TagStates<'_>, HashSet<&str>) {
    let mut states = HashMap::with_capacity(findings.len());
    let mut resources = HashSet::new();
    // Errors only: scans may have listed warnings or not (their severity filter), and what
    // decides compliance is errors.
    for f in findings.iter().filter(|f| f.severity == Severity::Error) {
        states.insert(
            (f.arn.as_str(), f.tag.as_str()),
            (f.violation_type, f.current_value.as_deref()),
        );
        resources.insert(f.arn.as_str());
    }
    (states, resources)
}

/// The drift from `before` to `after` (the findings of two scans). Compliant resources are not
/// stored, so a tag set right on a resource that had no violation before cannot be seen.
/// Lists are sorted (by ARN, then tag).
pub fn drift(before: &[StoredFinding], after: &[StoredFinding]) -> Drift {
    let (old, failing_before) = tag_states(before);
    let (new, failing_after) = tag_states(after);
    let sorted = |set: Vec<&str>| -> Vec<String> {
        let mut list: Vec<String> = set.into_iter().map(str::to_string).collect();
        list.sort_unstable();
        list
    };
    let mut keys: Vec<&(&str, &str)> = old
        .keys()
        .chain(new.keys().filter(|k| !old.contains_key(*k)))
        // Only resources seen in both scans: a resource absent from one may be compliant or
        // gone, and its tags are unknown there.
        .filter(|(arn, _)| failing_before.contains(arn) && failing_after.contains(arn))
        .collect();
    keys.sort_unstable();
    let missing = |s: Option<&(ViolationType, Option<&str>)>| {
        s.is_some_and(|(v, _)| *v == ViolationType::MissingRequiredTag)
    };
    let value =
        |s: Option<&(ViolationType, Option<&str>)>| s.and_then(|(_, v)| v.map(str::to_string));
    let mut tag_changes = Vec::new();
    for key @ (arn, tag) in keys {
        let (was, is) = (old.get(key), new.get(key));
        let change = match (missing(was), missing(is)) {
            (true, false) => ChangeKind::Added,
            (false, true) => ChangeKind::Removed,
            (true, true) => continue,
            (false, false) if value(was) != value(is) || was.is_some() != is.is_some() => {
                ChangeKind::Changed
            }
            (false, false) => continue,
        };
        tag_changes.push(TagChange {
            resource_arn: arn.to_string(),
            tag: tag.to_string(),
            change,
            before: value(was),
            after: value(is),
        });
    }
    Drift {
        became_non_compliant: sorted(failing_after.difference(&failing_before).copied().collect()),
        no_longer_non_compliant: sorted(
            failing_before.difference(&failing_after).copied().collect(),
        ),
        tag_changes,
    }
}

/// The most days of history a query may cover (summaries are kept at least this long).
pub const MAX_DAYS_BACK: u32 = 400;

/// Which history to build.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    /// Scans of this source only (`demo`, `aws`, ...).
    pub source: String,
    /// Scans of exactly this scope only, so that a trend compares like with like.
    pub scope: ScanScope,
    /// Days back from `now`.
    pub days_back: u32,
    /// Period of the points.
    pub group_by: GroupBy,
    /// Most items per drift list.
    pub limit: usize,
    /// The present (a parameter, so tests can move the clock).
    pub now: DateTime<Utc>,
}

/// What changed between the two most recent scans.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DriftReport {
    /// The earlier scan's id.
    pub from_scan: String,
    /// When it ran.
    pub from_scanned_at: DateTime<Utc>,
    /// The later scan's id.
    pub to_scan: String,
    /// When it ran.
    pub to_scanned_at: DateTime<Utc>,
    /// Resources non-compliant now that were not before, at most `limit`.
    pub became_non_compliant: Vec<String>,
    /// How many in all.
    pub became_non_compliant_count: u64,
    /// Resources non-compliant before that are not now (fixed, or deleted), at most `limit`.
    pub no_longer_non_compliant: Vec<String>,
    /// How many in all.
    pub no_longer_non_compliant_count: u64,
    /// Tags added, removed or changed on resources with errors in both scans, at most `limit`.
    pub tag_changes: Vec<TagChange>,
    /// How many in all.
    pub tag_changes_count: u64,
    /// Set when a list was cut at `limit`.
    pub truncated: Option<String>,
}

/// Result of `get_violation_history`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HistoryReport {
    /// Days looked back.
    pub days_back: u32,
    /// Period of the points.
    pub group_by: GroupBy,
    /// One point per period with scans, oldest first; each shows the period's last scan.
    pub history: Vec<HistoryPoint>,
    /// `improving`, `declining` or `stable` (latest period against the earliest; changes
    /// within half a percentage point are stable).
    pub trend: Trend,
    /// Score change from the earliest to the latest period (0.05 = five percentage points).
    pub score_change: f64,
    /// Average score change per period between them (0 with fewer than two periods).
    pub improvement_rate: f64,
    /// Scans of this scope in the window.
    pub scans_considered: u64,
    /// Drift between the two most recent scans of this scope; null with fewer than two, or
    /// when their findings are no longer kept.
    pub drift: Option<DriftReport>,
    /// The attribution gap's trend over the periods whose last scan recorded one; null when
    /// none did.
    pub gap_trend: Option<GapTrend>,
    /// What the history leaves out, and why.
    pub notes: Vec<String>,
}

/// The history the query asks for, from the store.
pub async fn history_report(
    store: &Store,
    query: &HistoryQuery,
) -> Result<HistoryReport, StoreError> {
    let since = query.now - chrono::Duration::days(query.days_back.into());
    let all = store.scans_since(since).await?;
    let (scans, others): (Vec<ScanSummary>, Vec<ScanSummary>) = all
        .into_iter()
        .filter(|s| s.scanned_at <= query.now)
        .partition(|s| s.source == query.source && same_scope(&s.scope, &query.scope));

    let mut notes = Vec::new();
    if scans.is_empty() {
        notes.push(
            "no scan of this scope in the window: run check_tag_compliance (or tagguard scan) with the same resource types and regions to record one".to_string(),
        );
    }
    if !others.is_empty() {
        notes.push(match others.len() {
            1 => "1 scan of another scope or source in the window is left out".to_string(),
            n => format!("{n} scans of other scopes or sources in the window are left out"),
        });
    }
    if scans.iter().any(|s| s.partial) {
        notes.push(
            "some scans were partial: their scores cover only what could be read".to_string(),
        );
    }
    let history = group(&scans, query.group_by);
    let gap = gap_trend(&history);
    let (trend, score_change) = trend(&history);
    let improvement_rate = if history.len() > 1 {
        score_change / (history.len() - 1) as f64
    } else {
        0.0
    };

    let mut drift_report = None;
    // Drift compares error findings: a scan that listed warnings only has none to compare.
    let mut latest: Vec<&ScanSummary> = scans
        .iter()
        .filter(|s| s.severity_filter != SeverityFilter::WarningsOnly)
        .collect();
    latest.sort_by_key(|s| std::cmp::Reverse((s.scanned_at, s.scan_id)));
    if let [to, from, ..] = latest[..] {
        match (store.findings(from.scan_id).await?, store.findings(to.scan_id).await?) {
            (Some(before), Some(after)) => {
                drift_report = Some(drift_report_of(from, to, drift(&before, &after), query.limit));
            }
            _ => notes.push(
                "the findings of the two latest scans are no longer kept, so no drift (store.findings_scans)".to_string(),
            ),
        }
    }
    Ok(HistoryReport {
        days_back: query.days_back,
        group_by: query.group_by,
        history,
        trend,
        score_change,
        improvement_rate,
        scans_considered: scans.len() as u64,
        drift: drift_report,
        gap_trend: gap,
        notes,
    })
}

/// Whether a recorded scan covered exactly `scope` (ARN-restricted checks never do).
fn same_scope(recorded: &ScanScope, scope: &ScanScope) -> bool {
    recorded.arns.is_empty()
        && recorded.resource_types == scope.resource_types
        && recorded.regions == scope.regions
        && recorded.accounts == scope.accounts
}

fn drift_report_of(
    from: &ScanSummary,
    to: &ScanSummary,
    drift: Drift,
    limit: usize,
) -> DriftReport {
    let counts = (
        drift.became_non_compliant.len(),
        drift.no_longer_non_compliant.len(),
        drift.tag_changes.len(),
    );
    let truncated = [
        cut_note(
            "resources that became non-compliant",
            counts.0.min(limit),
            counts.0,
        ),
        cut_note(
            "resources no longer non-compliant",
            counts.1.min(limit),
            counts.1,
        ),
        cut_note("tag changes", counts.2.min(limit), counts.2),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    DriftReport {
        from_scan: crate::domain::ScanId(from.scan_id).to_string(),
        from_scanned_at: from.scanned_at,
        to_scan: crate::domain::ScanId(to.scan_id).to_string(),
        to_scanned_at: to.scanned_at,
        became_non_compliant: first(drift.became_non_compliant, limit),
        became_non_compliant_count: counts.0 as u64,
        no_longer_non_compliant: first(drift.no_longer_non_compliant, limit),
        no_longer_non_compliant_count: counts.1 as u64,
        tag_changes: first(drift.tag_changes, limit),
        tag_changes_count: counts.2 as u64,
        truncated: (!truncated.is_empty()).then(|| truncated.join("; ")),
    }
}

fn first<T>(mut items: Vec<T>, limit: usize) -> Vec<T> {
    items.truncate(limit);
    items
}

/// "showing N of M …" when a list was cut.
fn cut_note(what: &str, shown: usize, total: usize) -> Option<String> {
    (shown < total).then(|| format!("showing {shown} of {total} {what}; raise 'limit' to see more"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn summary(id: u64, at: DateTime<Utc>, score: f64) -> ScanSummary {
        ScanSummary {
            scan_id: id,
            scanned_at: at,
            origin: crate::domain::Origin::Cli,
            source: "demo".into(),
            scope: Default::default(),
            policy_version: "1".into(),
            severity_filter: Default::default(),
            totals: ComplianceTotals {
                compliance_score: score,
                total_resources: 100,
                compliant_resources: (score * 100.0) as u64,
                non_compliant_resources: 100 - (score * 100.0) as u64,
                not_applicable_resources: 0,
                exempt_resources: 0,
                error_count: 0,
                warning_count: 0,
            },
            by_resource_type: BTreeMap::new(),
            by_tag: BTreeMap::new(),
            non_compliant_cost: None,
            cost_gap: None,
            issues: Vec::new(),
            partial: false,
            duration_ms: 1,
        }
    }

    fn finding(arn: &str, tag: &str, kind: &str, value: Option<&str>) -> StoredFinding {
        StoredFinding {
            arn: arn.into(),
            resource_type: crate::domain::ResourceType::Ec2Instance,
            violation_type: kind.parse().unwrap(),
            tag: tag.into(),
            severity: Severity::Error,
            current_value: value.map(str::to_string),
        }
    }

    #[test]
    fn the_gap_trend_compares_the_first_and_last_gaps_recorded() {
        let day = |d| Utc.with_ymd_and_hms(2026, 11, d, 12, 0, 0).unwrap();
        let with_gap = |id, d, percent: Option<f64>| {
            let mut s = summary(id, day(d), 0.5);
            s.cost_gap = percent.map(|p| crate::domain::costing::GapRecord {
                period_start: chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
                period_end: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
                metric: "AmortizedCost".into(),
                data_source: "demo_billing".into(),
                allocation_tags: vec!["CostCenter".into()],
                measured_tags: vec!["CostCenter".into()],
                total_spend: crate::domain::Usd::from_cents(100_000),
                attributable_spend: None,
                gap: None,
                gap_percent: Some(p),
                estimated: false,
            });
            s
        };
        let points = group(
            &[
                with_gap(1, 1, Some(30.0)),
                with_gap(2, 2, None),
                with_gap(3, 3, Some(22.5)),
            ],
            GroupBy::Day,
        );
        let trend = gap_trend(&points).unwrap();
        assert_eq!(trend.direction, GapDirection::Narrowing);
        assert_eq!((trend.first_percent, trend.last_percent), (30.0, 22.5));
        assert_eq!((trend.change_points, trend.periods), (-7.5, 2));
        let widening = group(
            &[with_gap(1, 1, Some(10.0)), with_gap(2, 2, Some(11.0))],
            GroupBy::Day,
        );
        assert_eq!(
            gap_trend(&widening).unwrap().direction,
            GapDirection::Widening
        );
        let within = group(
            &[with_gap(1, 1, Some(10.0)), with_gap(2, 2, Some(10.4))],
            GroupBy::Day,
        );
        assert_eq!(gap_trend(&within).unwrap().direction, GapDirection::Stable);
        assert_eq!(
            gap_trend(&group(&[with_gap(1, 1, None)], GroupBy::Day)),
            None
        );
    }

    #[test]
    fn periods_take_their_last_scan_and_sort_oldest_first() {
        let day = |d, h| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
        let scans = [
            summary(3, day(24, 9), 0.7),
            summary(1, day(2, 9), 0.5),
            summary(2, day(2, 18), 0.6),
        ];
        let points = group(&scans, GroupBy::Day);
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].period, "2026-11-02");
        assert_eq!(
            (points[0].scans, points[0].totals.compliance_score),
            (2, 0.6)
        );
        let months = group(&scans, GroupBy::Month);
        assert_eq!((months.len(), months[0].totals.compliance_score), (1, 0.7));
        assert_eq!(group(&scans, GroupBy::Week)[0].period, "2026-W45");
        let (direction, change) = trend(&points);
        assert_eq!(direction, Trend::Improving);
        assert!((change - 0.1).abs() < 1e-9);
        assert_eq!(trend(&months).0, Trend::Stable);
    }

    #[test]
    fn drift_names_tags_added_removed_and_changed() {
        let before = [
            finding("a", "Owner", "missing_required_tag", None),
            finding("a", "CostCenter", "invalid_value", Some("mkt")),
            finding("b", "Owner", "missing_required_tag", None),
        ];
        let after = [
            finding("a", "CostCenter", "invalid_value", Some("MKT-1")),
            finding("a", "Environment", "missing_required_tag", None),
            finding("c", "Owner", "missing_required_tag", None),
        ];
        let d = drift(&before, &after);
        assert_eq!(d.became_non_compliant, ["c"]);
        assert_eq!(d.no_longer_non_compliant, ["b"]);
        let changes: Vec<(&str, &str)> = d
            .tag_changes
            .iter()
            .map(|c| (c.tag.as_str(), c.change.as_str()))
            .collect();
        assert_eq!(
            changes,
            [
                ("CostCenter", "changed"),
                ("Environment", "removed"),
                ("Owner", "added")
            ]
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn scans() -> impl Strategy<Value = Vec<ScanSummary>> {
            // Up to 60 scans over ~120 days, scores on a 0.001 grid.
            proptest::collection::vec((0i64..120 * 24, 0u32..=1000), 0..60).prop_map(|items| {
                let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, (hours, score))| {
                        summary(
                            i as u64,
                            base + chrono::Duration::hours(hours),
                            score as f64 / 1000.0,
                        )
                    })
                    .collect()
            })
        }

        fn by() -> impl Strategy<Value = GroupBy> {
            prop_oneof![
                Just(GroupBy::Day),
                Just(GroupBy::Week),
                Just(GroupBy::Month)
            ]
        }

        proptest! {
            #[test]
            fn every_scan_lands_in_exactly_one_period(scans in scans(), by in by()) {
                let points = group(&scans, by);
                prop_assert_eq!(points.iter().map(|p| p.scans as usize).sum::<usize>(), scans.len());
                for pair in points.windows(2) {
                    prop_assert!(pair[0].last_scan_at < pair[1].last_scan_at, "oldest first");
                    prop_assert!(pair[0].period < pair[1].period);
                }
                for point in &points {
                    let last = scans
                        .iter()
                        .filter(|s| period_of(s.scanned_at, by) == point.period)
                        .max_by_key(|s| (s.scanned_at, s.scan_id))
                        .unwrap();
                    prop_assert_eq!(point.totals.compliance_score, last.totals.compliance_score);
                    prop_assert!((0.0..=1.0).contains(&point.totals.compliance_score));
                }
            }

            #[test]
            fn the_trend_follows_the_first_and_last_periods(scans in scans(), by in by()) {
                let points = group(&scans, by);
                let (direction, change) = trend(&points);
                match (points.first(), points.last()) {
                    (Some(first), Some(last)) if points.len() > 1 => {
                        let expected = last.totals.compliance_score - first.totals.compliance_score;
                        prop_assert_eq!(change, expected);
                        let want = if expected > STABLE_BAND {
                            Trend::Improving
                        } else if expected < -STABLE_BAND {
                            Trend::Declining
                        } else {
                            Trend::Stable
                        };
                        prop_assert_eq!(direction, want);
                    }
                    _ => prop_assert_eq!(direction, Trend::Stable),
                }
            }
        }
    }
}
