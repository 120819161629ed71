//! The snapshot source: the JSON that `aws resourcegroupstaggingapi get-resources` prints,
//! read from a file or standard input (`file:-`), for offline scans.
//!
//! Accepted, in any mix: pages (objects with `ResourceTagMappingList`), one after the other as
//! `aws … >> estate.json` or a paging loop writes them, or in a JSON array; and single entries
//! (objects with `ResourceARN`), one per line as `jq -c '.ResourceTagMappingList[]'` writes
//! them, or in an array (`--query ResourceTagMappingList`). Tags are AWS's list of
//! `{"Key", "Value"}` or a `{"key": "value"}` map; `null` or absent means untagged. Optional
//! per-resource fields tagguard understands beyond AWS's own: `Region` (for ARNs without one,
//! such as S3 buckets), `AccountId` (likewise), `Name`, `CreatedAt` (RFC 3339, a date, or
//! epoch seconds as the CLI prints them with `cli_timestamp_format = none`), `MonthlyCost`
//! (USD, a number or a decimal string), `CostSource` (`actual`, `allocated` or `estimated`,
//! the default) and `InstanceType`. Other fields (AWS's `ComplianceDetails`, say) are ignored.
//!
//! Nothing is lost quietly: an entry that cannot be read (a malformed ARN, tags of the wrong
//! shape) is an issue naming its page, entry and line while the rest is scanned; a field that
//! cannot be read (a `CreatedAt` of no known form) is an issue and the resource is scanned
//! without it; a tag value written as a number is read as its text, with a note; an ARN given
//! more than once is counted once, with a note. Text after the last page that is not JSON is
//! an error naming its line, and so is input that is not JSON at all, with its likely cause
//! (`--output text`, YAML, Python's repr).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{FetchContext, Page, ResourceSource, Shard, ShardPlan, SourceError};
use crate::domain::{
    Arn, CostSource, Interner, Resource, ResourceAttributes, ScanIssue, ScanIssueKind, ScanScope,
    Tag, Usd,
};
use crate::policy::strip_position;

/// Resources per page handed to the engine.
const PAGE_SIZE: usize = 1_000;

/// Duplicate ARNs named in the note about them.
const DUPLICATES_NAMED: usize = 5;

pub use crate::domain::{GLOBAL_REGION, UNKNOWN_ACCOUNT};

/// A shard's identity in a snapshot: (account, region, service).
type ShardKey = (Arc<str>, Arc<str>, Arc<str>);

/// A snapshot loaded into memory, grouped into shards.
pub struct SnapshotSource {
    name: String,
    shards: BTreeMap<ShardKey, Vec<Resource>>,
    /// Where each ARN is, for lookups.
    by_arn: HashMap<String, Indexed>,
    /// Entries or fields that could not be read, reported with every scan.
    rejected: Vec<ScanIssue>,
    /// What was read in a way the user should know (duplicates, values read as text).
    notes: Vec<String>,
}

/// Where a resource is: its shard and position there, and the entry it was read from.
struct Indexed {
    key: ShardKey,
    position: usize,
    place: Place,
}

/// Where an entry is in the input, for messages: `page 2, entry 7 (line 40)`.
#[derive(Debug, Clone, Copy)]
struct Place {
    /// 1-based page number, when the entry is in a page.
    page: Option<usize>,
    /// 1-based entry number within its page (or among the loose entries).
    entry: usize,
    line: usize,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.page {
            Some(page) => write!(f, "page {page}, entry {} (line {})", self.entry, self.line),
            None => write!(f, "entry {} (line {})", self.entry, self.line),
        }
    }
}

/// Line numbers of byte offsets, asked for in increasing order (as entries are read), so that
/// numbering every entry of a large file costs one pass over it.
struct Lines<'t> {
    text: &'t [u8],
    offset: usize,
    line: usize,
}

impl<'t> Lines<'t> {
    fn new(text: &'t str) -> Lines<'t> {
        Lines {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    /// The 1-based line of byte `offset`.
    fn at(&mut self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        if offset < self.offset {
            self.offset = 0;
            self.line = 1;
        }
        self.line += self.text[self.offset..offset]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        self.offset = offset;
        self.line
    }
}

/// The byte offset of a slice of `text` within it.
fn offset_in(text: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(text.as_ptr() as usize)
}

/// What a top-level JSON value (or an element of a top-level array) is.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(rename = "ResourceTagMappingList", borrow, default)]
    mappings: Option<&'a RawValue>,
    #[serde(rename = "ResourceARN", borrow, default)]
    arn: Option<&'a RawValue>,
}

/// One entry, field by field, each read leniently so that one bad field is one issue.
#[derive(Deserialize)]
struct RawEntry<'a> {
    #[serde(rename = "ResourceARN", borrow, default)]
    arn: Option<&'a RawValue>,
    #[serde(rename = "Tags", borrow, default)]
    tags: Option<&'a RawValue>,
    #[serde(rename = "Region", default)]
    region: Option<String>,
    #[serde(rename = "AccountId", default)]
    account_id: Option<String>,
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "CreatedAt", borrow, default)]
    created_at: Option<&'a RawValue>,
    #[serde(rename = "MonthlyCost", borrow, default)]
    monthly_cost: Option<&'a RawValue>,
    #[serde(rename = "CostSource", default)]
    cost_source: Option<String>,
    #[serde(rename = "InstanceType", default)]
    instance_type: Option<String>,
}

/// One tag of AWS's list form, each part kept as written.
#[derive(Deserialize)]
struct ListTag<'a> {
    #[serde(rename = "Key", borrow, default)]
    key: Option<&'a RawValue>,
    #[serde(rename = "Value", borrow, default)]
    value: Option<&'a RawValue>,
}

/// The tags of the map form, in the order written.
struct Pairs<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Pairs<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Pairs<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of tag keys to values")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Pairs<'a>, M::Error> {
                let mut pairs = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
                    pairs.push((key, value));
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// Builds the source from its entries, collecting issues and notes.
struct Reader<'t> {
    origin: &'t str,
    shards: BTreeMap<ShardKey, Vec<Resource>>,
    interner: Interner,
    /// Every ARN read: the index lookups use, and how repeats are found.
    by_arn: HashMap<String, Indexed>,
    duplicates: Vec<(String, Place, Place)>,
    duplicate_count: usize,
    rejected: Vec<ScanIssue>,
    text_values: usize,
    first_text_value: Option<String>,
}

impl<'t> Reader<'t> {
    fn issue(&mut self, message: String) {
        self.rejected.push(ScanIssue::unattributed(
            ScanIssueKind::InvalidInput,
            message,
        ));
    }

    /// Reads one entry (a `ResourceTagMappingList` element) at `place`.
    fn entry(&mut self, raw: &RawValue, place: Place) {
        let origin = self.origin;
        let entry: RawEntry<'_> = match serde_json::from_str(raw.get()) {
            Ok(entry) => entry,
            Err(e) => {
                let what = if raw.get().trim_start().starts_with('{') {
                    crate::policy::humanize(&strip_position(&e.to_string()))
                } else {
                    format!(
                        "expected an object with ResourceARN and Tags, found {}",
                        kind_of(raw)
                    )
                };
                self.issue(format!(
                    "snapshot '{origin}', {place}: {what}; the entry is skipped"
                ));
                return;
            }
        };
        let Some(arn_raw) = entry.arn else {
            self.issue(format!(
                "snapshot '{origin}', {place}: the entry has no ResourceARN; it is skipped"
            ));
            return;
        };
        let arn_text: String = match serde_json::from_str::<String>(arn_raw.get()) {
            Ok(text) => text,
            Err(_) => {
                self.issue(format!(
                    "snapshot '{origin}', {place}: ResourceARN is {}, not a string; the entry is skipped",
                    kind_of(arn_raw)
                ));
                return;
            }
        };
        let arn = match Arn::parse(&arn_text) {
            Ok(arn) => arn,
            Err(e) => {
                self.issue(format!(
                    "snapshot '{origin}', {place}: {e}; the entry is skipped"
                ));
                return;
            }
        };
        let tags = match entry.tags.map(|raw| self.tags(raw, &arn, place)) {
            None => Vec::new(),
            Some(Ok(tags)) => tags,
            Some(Err(why)) => {
                self.issue(format!(
                    "snapshot '{origin}', {place}: Tags of '{}' {why}; the entry is skipped",
                    arn.as_str()
                ));
                return;
            }
        };
        if let Some(first) = self.by_arn.get(arn.as_str()) {
            self.duplicate_count += 1;
            if self.duplicates.len() < DUPLICATES_NAMED {
                self.duplicates
                    .push((arn.as_str().to_string(), first.place, place));
            }
            return;
        }

        let created_at = entry.created_at.and_then(|raw| match timestamp(raw) {
            Ok(time) => time,
            Err(why) => {
                self.issue(format!(
                    "snapshot '{origin}', {place}: CreatedAt of '{}' {why}; the resource is scanned with its age unknown",
                    arn.as_str()
                ));
                None
            }
        });
        let monthly_cost = entry.monthly_cost.and_then(|raw| {
            match serde_json::from_str::<Option<Usd>>(raw.get()) {
                Ok(Some(cost)) if cost.is_negative() => {
                    self.issue(format!(
                        "snapshot '{origin}', {place}: MonthlyCost {cost} of '{}' is not a cost; the resource is scanned with its cost unknown",
                        arn.as_str()
                    ));
                    None
                }
                Ok(cost) => cost,
                Err(e) => {
                    self.issue(format!(
                        "snapshot '{origin}', {place}: MonthlyCost of '{}': {}; the resource is scanned with its cost unknown",
                        arn.as_str(),
                        strip_position(&e.to_string())
                    ));
                    None
                }
            }
        });
        let cost_source = match entry.cost_source.as_deref().map(str::parse::<CostSource>) {
            None => None,
            Some(Ok(source)) => Some(source),
            Some(Err(e)) => {
                self.issue(format!(
                    "snapshot '{origin}', {place}: CostSource of '{}': {e}; the cost counts as estimated",
                    arn.as_str()
                ));
                None
            }
        };
        let region = match (arn.region(), entry.region.as_deref()) {
            ("", Some(r)) if !r.trim().is_empty() => self.interner.text(r.trim()),
            ("", _) => self.interner.text(GLOBAL_REGION),
            (r, _) => self.interner.text(r),
        };
        let account = match (arn.account_id(), entry.account_id.as_deref()) {
            ("", Some(a)) if !a.trim().is_empty() => self.interner.text(a.trim()),
            ("", _) => self.interner.text(UNKNOWN_ACCOUNT),
            (a, _) => self.interner.text(a),
        };
        let service = self.interner.text(arn.service());
        let resource = Resource {
            resource_type: arn.resource_type(),
            id: arn.resource_id().to_string(),
            arn: arn.as_str().to_string(),
            account_id: account.clone(),
            region: region.clone(),
            name: entry.name,
            tags,
            created_at,
            cost_source: match monthly_cost {
                Some(_) => cost_source.unwrap_or(CostSource::Estimated),
                None => CostSource::Unknown,
            },
            monthly_cost,
            attributes: ResourceAttributes {
                instance_type: entry.instance_type,
                ..ResourceAttributes::default()
            },
        };
        let key = (account, region, service);
        let resources = self.shards.entry(key.clone()).or_default();
        self.by_arn.insert(
            resource.arn.clone(),
            Indexed {
                key,
                position: resources.len(),
                place,
            },
        );
        resources.push(resource);
    }

    /// The tags of an entry: AWS's list of `{Key, Value}`, or a map; `null` is none. A value
    /// written as a number or `true`/`false` is read as the text written (`1.50` stays `1.50`).
    fn tags(&mut self, raw: &RawValue, arn: &Arn, place: Place) -> Result<Vec<Tag>, String> {
        let mut text_value = |key: &str, value: Option<&RawValue>| -> Result<String, String> {
            let Some(value) = value else {
                return Ok(String::new());
            };
            let written = value.get().trim();
            match written.as_bytes().first() {
                Some(b'"') => serde_json::from_str(written).map_err(|e| e.to_string()),
                Some(b'n') => Ok(String::new()),
                Some(b'{' | b'[') => Err(format!("give '{key}' {}, not a string", kind_of(value))),
                _ => {
                    self.text_values += 1;
                    if self.first_text_value.is_none() {
                        self.first_text_value = Some(format!(
                            "'{key}' = {written} of '{}' ({place})",
                            arn.as_str()
                        ));
                    }
                    Ok(written.to_string())
                }
            }
        };
        match raw.get().trim_start().as_bytes().first() {
            Some(b'n') => Ok(Vec::new()),
            Some(b'{') => {
                let Pairs(pairs) = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
                pairs
                    .into_iter()
                    .map(|(key, value)| {
                        let text = text_value(&key, Some(value))?;
                        Ok(Tag::new(key, text))
                    })
                    .collect()
            }
            Some(b'[') => {
                let items: Vec<&RawValue> =
                    serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        // serde would read a struct from a list too; a tag is an object.
                        let parsed = if item.get().starts_with('{') {
                            serde_json::from_str(item.get()).ok()
                        } else {
                            None
                        };
                        let tag: ListTag<'_> = parsed.ok_or_else(|| {
                            format!(
                                "give tag {} as {}: expected {{\"Key\": ..., \"Value\": ...}}",
                                i + 1,
                                kind_of(item)
                            )
                        })?;
                        let key = match tag.key {
                            Some(key) if key.get().starts_with('"') => {
                                serde_json::from_str::<String>(key.get()).map_err(|e| e.to_string())?
                            }
                            Some(key) => {
                                return Err(format!(
                                    "give tag {} a Key that is {}, not a string",
                                    i + 1,
                                    kind_of(key)
                                ));
                            }
                            None => {
                                return Err(format!(
                                    "give tag {} no Key (expected {{\"Key\": ..., \"Value\": ...}})",
                                    i + 1
                                ));
                            }
                        };
                        let value = text_value(&key, tag.value)?;
                        Ok(Tag::new(key, value))
                    })
                    .collect()
            }
            _ => Err(format!(
                "is {}: expected a list of {{\"Key\": ..., \"Value\": ...}} or a {{\"key\": \"value\"}} map",
                kind_of(raw)
            )),
        }
    }
}

/// A `CreatedAt`: RFC 3339, a date-time without zone (UTC), a date, or epoch seconds (or
/// milliseconds, for numbers too large to be seconds); `null` is unknown.
fn timestamp(raw: &RawValue) -> Result<Option<DateTime<Utc>>, String> {
    let written = raw.get().trim();
    match written.as_bytes().first() {
        Some(b'n') => Ok(None),
        Some(b'0'..=b'9' | b'-') => {
            // From the text written, not a float: 1700000000.123 is 123 ms exactly.
            let (whole, fraction) = written.split_once('.').unwrap_or((written, ""));
            let seconds: i64 = whole
                .parse()
                .map_err(|_| format!("{written} is not epoch seconds"))?;
            let digits: String = fraction.chars().take(9).collect();
            if !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(format!("{written} is not epoch seconds"));
            }
            let nanos: u32 = format!("{digits:0<9}").parse().unwrap_or(0);
            // Epoch milliseconds (JavaScript, some exports) would be past year 5000 as seconds.
            let (seconds, nanos) = if seconds.abs() >= 100_000_000_000 && fraction.is_empty() {
                (
                    seconds.div_euclid(1000),
                    (seconds.rem_euclid(1000) as u32) * 1_000_000,
                )
            } else {
                (seconds, nanos)
            };
            DateTime::from_timestamp(seconds, nanos)
                .map(Some)
                .ok_or_else(|| format!("{written} is out of range as epoch seconds"))
        }
        Some(b'"') => {
            let text: String = serde_json::from_str(written).map_err(|e| e.to_string())?;
            let text = text.trim();
            if let Ok(time) = DateTime::parse_from_rfc3339(text) {
                return Ok(Some(time.with_timezone(&Utc)));
            }
            for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
                if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
                    return Ok(Some(time.and_utc()));
                }
            }
            if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                return Ok(Some(date.and_hms_opt(0, 0, 0).expect("midnight").and_utc()));
            }
            Err(format!(
                "'{}' is not a time: expected RFC 3339 (2024-05-01T12:00:00Z), a date or epoch seconds",
                crate::domain::text::show(text)
            ))
        }
        _ => Err(format!("is {}, not a time", kind_of(raw))),
    }
}

fn kind_of(raw: &RawValue) -> &'static str {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "a list",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "true or false",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Why text that is not JSON was given, when it is clear: the other outputs of the AWS CLI,
/// Python's repr of the JSON.
fn likely_cause(text: &str) -> Option<&'static str> {
    let start = text.trim_start();
    let first_line = start.lines().next().unwrap_or("");
    if first_line.starts_with("RESOURCETAGMAPPINGLIST")
        || first_line.starts_with("TAGS\t")
        || (first_line.contains('\t') && first_line.contains("arn:"))
    {
        return Some(
            "this looks like the AWS CLI's --output text; run it again with --output json",
        );
    }
    if first_line.starts_with("ResourceTagMappingList:")
        || first_line.starts_with("- ResourceARN:")
        || first_line.starts_with("PaginationToken:")
    {
        return Some(
            "this looks like the AWS CLI's --output yaml; run it again with --output json",
        );
    }
    if first_line.starts_with("+-") || first_line.starts_with("||") || first_line.starts_with("|  ")
    {
        return Some(
            "this looks like the AWS CLI's --output table; run it again with --output json",
        );
    }
    if start.starts_with("{'")
        || start.starts_with("[{'")
        || text.contains("'ResourceARN':")
        || text.contains("'ResourceTagMappingList':")
    {
        return Some(
            "this looks like Python's repr of the response (single quotes, True, None): write it with json.dump instead of print",
        );
    }
    None
}

impl SnapshotSource {
    /// Reads and parses the snapshot at `path`; `-` reads standard input.
    pub fn open(path: &Path) -> Result<SnapshotSource, SourceError> {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| {
                SourceError::new(
                    ScanIssueKind::InvalidInput,
                    format!(
                        "cannot read the snapshot from standard input: {}",
                        crate::policy::io_reason(&e)
                    ),
                )
            })?;
            let mut source = SnapshotSource::parse(&text, "stdin")?;
            source.name = "file:-".to_string();
            return Ok(source);
        }
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            SourceError::new(
                ScanIssueKind::InvalidInput,
                format!(
                    "cannot read snapshot '{shown}': {}",
                    crate::policy::io_reason(&e)
                ),
            )
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let bytes = e.as_bytes();
            let why = if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
                "it is UTF-16 text (what Windows PowerShell's > writes): save it as UTF-8, e.g. with | Out-File -Encoding utf8".to_string()
            } else {
                format!(
                    "it is not UTF-8 text (byte {} is not)",
                    e.utf8_error().valid_up_to()
                )
            };
            SourceError::new(
                ScanIssueKind::InvalidInput,
                format!("cannot read snapshot '{shown}': {why}"),
            )
        })?;
        SnapshotSource::parse(&text, &shown)
    }

    /// Parses snapshot text; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<SnapshotSource, SourceError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // Files saved with a byte-order mark and then joined (`cat a.json b.json`) have one at
        // the start of a line between pages: blanks of the same length keep every offset.
        let unmarked;
        let text = if text.contains("\n\u{feff}") {
            unmarked = text.replace("\n\u{feff}", "\n   ");
            unmarked.as_str()
        } else {
            text
        };
        let invalid = |message: String| SourceError::new(ScanIssueKind::InvalidInput, message);
        let expected = "expected the output of 'aws resourcegroupstaggingapi get-resources' (JSON)";
        if text.trim().is_empty() {
            return Err(invalid(format!("snapshot '{origin}' is empty; {expected}")));
        }
        let mut lines = Lines::new(text);
        let mut reader = Reader {
            origin,
            shards: BTreeMap::new(),
            interner: Interner::default(),
            by_arn: HashMap::new(),
            duplicates: Vec::new(),
            duplicate_count: 0,
            rejected: Vec::new(),
            text_values: 0,
            first_text_value: None,
        };
        let mut pages = 0usize;
        let mut loose = 0usize;
        let mut values = 0usize;
        // Where reading (re)starts: after a bad line of loose entries, the next line.
        let mut base = 0usize;
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
        loop {
            let at = base + stream.byte_offset();
            let raw = match stream.next() {
                None => break,
                Some(Ok(raw)) => raw,
                Some(Err(e)) => {
                    let slice = &text[base..];
                    let first_line = text[..base].matches('\n').count() + 1;
                    let line = first_line + e.line() - 1;
                    // Loose entries are one per line: a bad line is an issue, and reading goes
                    // on with the next.
                    if loose > 0 && pages == 0 && !e.is_eof() {
                        let line_start: usize = slice
                            .split_inclusive('\n')
                            .take(e.line() - 1)
                            .map(str::len)
                            .sum();
                        let line_text = slice[line_start..].lines().next().unwrap_or("");
                        let shown: String = line_text.chars().take(40).collect();
                        reader.issue(format!(
                            "snapshot '{origin}', line {line}: '{}' is not a JSON entry ({}); the line is skipped",
                            crate::domain::text::show(&shown),
                            strip_position(&e.to_string())
                        ));
                        match slice[line_start..].find('\n') {
                            Some(end) => {
                                base += line_start + end + 1;
                                stream = serde_json::Deserializer::from_str(&text[base..])
                                    .into_iter::<&RawValue>();
                                continue;
                            }
                            None => break,
                        }
                    }
                    let hint = if values == 0 {
                        likely_cause(text)
                            .map_or_else(|| format!("; {expected}"), |cause| format!("; {cause}"))
                    } else if e.is_eof() {
                        format!(
                            "; the input ends inside {}: was the file cut short?",
                            if pages > 0 {
                                format!("page {}", pages + 1)
                            } else {
                                "an entry".to_string()
                            }
                        )
                    } else {
                        let after = text[at..].trim_start();
                        let shown: String = after.chars().take(40).collect();
                        format!(
                            "; after {} that is not JSON: '{}' (remove it, or write only the command's output to the file)",
                            if pages > 0 {
                                format!("page {pages}, text")
                            } else {
                                "the entries, text".to_string()
                            },
                            crate::domain::text::show(shown.lines().next().unwrap_or(""))
                        )
                    };
                    return Err(invalid(format!(
                        "snapshot '{origin}' at line {line}, column {}: {}{hint}",
                        e.column(),
                        strip_position(&e.to_string())
                    )));
                }
            };
            values += 1;
            let items: Vec<&RawValue> = if raw.get().starts_with('[') {
                serde_json::from_str(raw.get()).map_err(|e| {
                    invalid(format!(
                        "snapshot '{origin}': {}",
                        strip_position(&e.to_string())
                    ))
                })?
            } else {
                vec![raw]
            };
            for item in items {
                let line = lines.at(offset_in(text, item.get()));
                let probe: Probe<'_> = if item.get().starts_with('{') {
                    serde_json::from_str(item.get()).map_err(|e| {
                        invalid(format!(
                            "snapshot '{origin}' at line {line}: {}",
                            strip_position(&e.to_string())
                        ))
                    })?
                } else {
                    return Err(invalid(format!(
                        "snapshot '{origin}' at line {line}: found {} where a page (an object with ResourceTagMappingList) or an entry (an object with ResourceARN) belongs; {expected}",
                        kind_of(item)
                    )));
                };
                match (probe.mappings, probe.arn) {
                    (Some(list), _) => {
                        pages += 1;
                        let entries: Vec<&RawValue> = match serde_json::from_str(list.get()) {
                            Ok(entries) => entries,
                            Err(_) => {
                                return Err(invalid(format!(
                                    "snapshot '{origin}' at line {}, page {pages}: ResourceTagMappingList is {}, not a list",
                                    lines.at(offset_in(text, list.get())),
                                    kind_of(list)
                                )));
                            }
                        };
                        for (i, entry) in entries.into_iter().enumerate() {
                            let place = Place {
                                page: Some(pages),
                                entry: i + 1,
                                line: lines.at(offset_in(text, entry.get())),
                            };
                            reader.entry(entry, place);
                        }
                    }
                    (None, Some(_)) => {
                        loose += 1;
                        reader.entry(
                            item,
                            Place {
                                page: None,
                                entry: loose,
                                line,
                            },
                        );
                    }
                    (None, None) => {
                        return Err(invalid(format!(
                            "snapshot '{origin}' at line {line}: an object with neither ResourceTagMappingList nor ResourceARN; {expected}"
                        )));
                    }
                }
            }
        }
        // Page numbers are only worth giving when there are several pages.
        let single_page = pages == 1 && loose == 0;
        if single_page {
            for issue in &mut reader.rejected {
                issue.message = issue.message.replace("page 1, entry", "entry");
            }
        }
        let mut notes = Vec::new();
        if reader.duplicate_count > 0 {
            let named: Vec<String> = reader
                .duplicates
                .iter()
                .map(|(arn, first, again)| format!("'{arn}' ({first}, again at {again})"))
                .collect();
            notes.push(format!(
                "snapshot '{origin}': {} given more than once and counted once, at its first entry: {}{}",
                if reader.duplicate_count == 1 { "1 entry repeats an ARN".to_string() } else { format!("{} entries repeat an ARN", reader.duplicate_count) },
                named.join("; "),
                if reader.duplicate_count > named.len() { "; ..." } else { "" }
            ));
        }
        if let Some(first) = &reader.first_text_value {
            notes.push(format!(
                "snapshot '{origin}': {} written as a number or true/false, read as text (first: {first})",
                if reader.text_values == 1 { "1 tag value".to_string() } else { format!("{} tag values", reader.text_values) }
            ));
        }
        if single_page {
            for note in &mut notes {
                *note = note.replace("page 1, entry", "entry");
            }
        }
        let Reader {
            shards,
            by_arn,
            rejected,
            ..
        } = reader;
        Ok(SnapshotSource {
            name: format!("file:{origin}"),
            shards,
            by_arn,
            rejected,
            notes,
        })
    }

    /// The resource of an indexed ARN.
    fn resource(&self, arn: &str) -> &Resource {
        let Indexed { key, position, .. } = &self.by_arn[arn];
        &self.shards[key][*position]
    }

    /// An issue for each region or account of a filter that no resource of the snapshot is in
    /// (a typo, usually): resources of no region or account would pass such a filter alone,
    /// and a gate must not pass on them.
    fn filters_naming_nothing(&self, scope: &ScanScope) -> Vec<ScanIssue> {
        let mut issues = Vec::new();
        let regions: std::collections::BTreeSet<&str> =
            self.shards.keys().map(|(_, region, _)| &**region).collect();
        let accounts: std::collections::BTreeSet<&str> = self
            .shards
            .keys()
            .map(|(account, _, _)| &**account)
            .collect();
        for (filter, asked, present, label) in [
            ("--regions", &scope.regions, &regions, "regions"),
            ("--accounts", &scope.accounts, &accounts, "accounts"),
        ] {
            let known: Vec<&str> = present
                .iter()
                .copied()
                .filter(|v| *v != GLOBAL_REGION && *v != UNKNOWN_ACCOUNT)
                .collect();
            for wanted in asked {
                if !present.contains(wanted.as_str()) {
                    let hint = crate::domain::text::closest(wanted, known.iter().copied(), 2)
                        .map(|k| format!("; did you mean '{k}'?"))
                        .unwrap_or_default();
                    issues.push(ScanIssue::unattributed(
                        ScanIssueKind::InvalidInput,
                        format!(
                            "{filter} names '{}', which no resource of snapshot '{}' is in (its {label}: {}){hint}",
                            crate::domain::text::show(wanted),
                            self.name.trim_start_matches("file:"),
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ),
                    ));
                }
            }
        }
        issues
    }

    /// Number of resources loaded.
    pub fn len(&self) -> usize {
        self.shards.values().map(Vec::len).sum()
    }

    /// Whether the snapshot holds no resources.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ResourceSource for SnapshotSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn plan(
        &self,
        scope: &ScanScope,
        _cx: &FetchContext<'_>,
    ) -> Result<ShardPlan, SourceError> {
        let mut issues = self.rejected.clone();
        issues.extend(self.filters_naming_nothing(scope));
        let mut shards = Vec::new();
        for ((account, region, service), resources) in &self.shards {
            if !scope.admits_account(account) || !scope.admits_region(region) {
                continue;
            }
            let mut types: Vec<_> = resources
                .iter()
                .map(|r| r.resource_type.clone())
                .filter(|t| scope.admits_type(t))
                .collect();
            types.sort();
            types.dedup();
            if !types.is_empty() {
                shards.push(Shard::new(
                    account.clone(),
                    region.clone(),
                    service.clone(),
                    types,
                ));
            }
        }
        Ok(ShardPlan {
            shards,
            issues,
            notes: self.notes.clone(),
        })
    }

    /// Only the shards holding the ARNs asked for, each reading just those.
    async fn plan_lookup(
        &self,
        scope: &ScanScope,
        _cx: &FetchContext<'_>,
    ) -> Result<ShardPlan, SourceError> {
        let mut wanted: BTreeMap<&ShardKey, Vec<String>> = BTreeMap::new();
        for arn in &scope.arns {
            if let Some(Indexed { key, .. }) = self.by_arn.get(arn)
                && scope.admits(self.resource(arn))
            {
                wanted.entry(key).or_default().push(arn.clone());
            }
        }
        let shards = wanted
            .into_iter()
            .map(|((account, region, service), arns)| {
                let mut shard = Shard::new(account.clone(), region.clone(), service.clone(), {
                    let mut types: Vec<_> = arns
                        .iter()
                        .map(|a| self.resource(a).resource_type.clone())
                        .collect();
                    types.sort();
                    types.dedup();
                    types
                });
                shard.arns = arns;
                shard
            })
            .collect();
        Ok(ShardPlan {
            shards,
            issues: self.rejected.clone(),
            notes: self.notes.clone(),
        })
    }

    async fn fetch_page(
        &self,
        shard: &Shard,
        token: Option<String>,
        cx: &FetchContext<'_>,
    ) -> Result<Page, SourceError> {
        // No API quota here; the `local` limiter only keeps a runaway scan polite.
        cx.pace(&shard.account_id, &shard.region, "local").await;
        if !shard.arns.is_empty() {
            let offset = super::page_offset(token)? as usize;
            let end = (offset + PAGE_SIZE).min(shard.arns.len());
            return Ok(Page {
                resources: shard.arns[offset.min(end)..end]
                    .iter()
                    .filter(|arn| self.by_arn.contains_key(*arn))
                    .map(|arn| self.resource(arn).clone())
                    .collect(),
                next: (end < shard.arns.len()).then(|| end.to_string()),
                issues: Vec::new(),
            });
        }
        let key = (
            shard.account_id.clone(),
            shard.region.clone(),
            shard.service.clone(),
        );
        let resources = self.shards.get(&key).ok_or_else(|| {
            SourceError::new(
                ScanIssueKind::InvalidInput,
                format!("shard '{shard}' is not in the snapshot"),
            )
        })?;
        let offset = super::page_offset(token)? as usize;
        let end = (offset + PAGE_SIZE).min(resources.len());
        Ok(Page {
            resources: resources[offset.min(end)..end]
                .iter()
                .filter(|r| shard.resource_types.contains(&r.resource_type))
                .cloned()
                .collect(),
            next: (end < resources.len()).then(|| end.to_string()),
            issues: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "PaginationToken": "",
      "ResourceTagMappingList": [
        {"ResourceARN": "arn:aws:ec2:us-east-1:123456789012:instance/i-1",
         "Tags": [{"Key": "CostCenter", "Value": "Sales"}]},
        {"ResourceARN": "arn:aws:s3:::logs-bucket", "Tags": [], "Region": "eu-west-1",
         "AccountId": "123456789012", "MonthlyCost": 12.5},
        {"ResourceARN": "arn:aws:s3:::other-bucket"},
        {"ResourceARN": "not-an-arn", "Tags": []},
        {"ResourceARN": "arn:aws:rds:us-east-1:123456789012:db:orders", "Tags": [],
         "ComplianceDetails": {"NoncompliantKeys": [], "ComplianceStatus": true}}
      ]
    }"#;

    fn scan(source: &SnapshotSource, scope: &ScanScope) -> Vec<Resource> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let calls = crate::source::ApiCallCounter::default();
            let cx = FetchContext::unthrottled(&calls);
            let plan = if scope.arns.is_empty() {
                source.plan(scope, &cx).await.unwrap()
            } else {
                source.plan_lookup(scope, &cx).await.unwrap()
            };
            let mut all = Vec::new();
            for shard in &plan.shards {
                let mut token = None;
                loop {
                    let page = source.fetch_page(shard, token, &cx).await.unwrap();
                    all.extend(page.resources);
                    token = page.next;
                    if token.is_none() {
                        break;
                    }
                }
            }
            all
        })
    }

    #[test]
    fn reads_aws_cli_output_with_extras() {
        let source = SnapshotSource::parse(SAMPLE, "s.json").unwrap();
        assert_eq!(source.len(), 4);
        let all = scan(&source, &ScanScope::default());
        let bucket = all.iter().find(|r| r.id == "logs-bucket").unwrap();
        assert_eq!(
            (&*bucket.region, &*bucket.account_id),
            ("eu-west-1", "123456789012")
        );
        assert_eq!(bucket.monthly_cost, Some(Usd::from_cents(1250)));
        assert_eq!(bucket.cost_source, CostSource::Estimated);
        let other = all.iter().find(|r| r.id == "other-bucket").unwrap();
        assert_eq!(
            (&*other.region, &*other.account_id),
            (GLOBAL_REGION, UNKNOWN_ACCOUNT)
        );
        assert!(other.tags.is_empty());
    }

    fn plan(source: &SnapshotSource) -> ShardPlan {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let calls = crate::source::ApiCallCounter::default();
        let cx = FetchContext::unthrottled(&calls);
        runtime
            .block_on(source.plan(&ScanScope::default(), &cx))
            .unwrap()
    }

    #[test]
    fn malformed_arn_becomes_an_issue_not_a_failure() {
        let source = SnapshotSource::parse(SAMPLE, "s.json").unwrap();
        let plan = plan(&source);
        assert_eq!(plan.issues.len(), 1);
        assert!(
            plan.issues[0]
                .message
                .starts_with("snapshot 's.json', entry 4 (line 9): 'not-an-arn' is not an ARN"),
            "{}",
            plan.issues[0].message
        );
    }

    const PAGE_1: &str = r#"{"ResourceTagMappingList": [
        {"ResourceARN": "arn:aws:ec2:us-east-1:123456789012:instance/i-1", "Tags": [{"Key": "A", "Value": "1"}]}
    ], "PaginationToken": "tok"}"#;
    const PAGE_2: &str = r#"{"ResourceTagMappingList": [
        {"ResourceARN": "arn:aws:ec2:us-east-1:123456789012:instance/i-2", "Tags": []},
        {"ResourceARN": "arn:aws:s3:::b", "Tags": [{"Key": "A", "Value": "2"}]}
    ]}"#;

    fn arns(source: &SnapshotSource) -> Vec<String> {
        let mut arns: Vec<String> = scan(source, &ScanScope::default())
            .into_iter()
            .map(|r| r.arn)
            .collect();
        arns.sort();
        arns
    }

    #[test]
    fn pages_one_after_the_other_in_an_array_or_as_loose_entries_read_the_same() {
        let concatenated = format!("{PAGE_1}\n{PAGE_2}\n");
        let array = format!("[{PAGE_1}, {PAGE_2}]");
        let loose = [
            r#"{"ResourceARN": "arn:aws:ec2:us-east-1:123456789012:instance/i-1", "Tags": {"A": "1"}}"#,
            r#"{"ResourceARN": "arn:aws:ec2:us-east-1:123456789012:instance/i-2"}"#,
            r#"{"ResourceARN": "arn:aws:s3:::b", "Tags": [{"Key": "A", "Value": "2"}]}"#,
        ];
        let ndjson = loose.join("\n");
        let list = format!("[{}]", loose.join(","));
        let want = arns(&SnapshotSource::parse(&concatenated, "c.json").unwrap());
        assert_eq!(want.len(), 3, "both pages are read");
        for text in [array, ndjson, list] {
            let source = SnapshotSource::parse(&text, "x.json").unwrap();
            assert_eq!(arns(&source), want, "{text}");
            assert!(plan(&source).issues.is_empty());
        }
    }

    #[test]
    fn text_after_the_last_page_is_an_error_naming_its_line() {
        let text = format!("{PAGE_1}\n{PAGE_2}\nDone: 3 resources\n");
        let err = SnapshotSource::parse(&text, "e.json").err().unwrap();
        assert!(
            err.message
                .starts_with("snapshot 'e.json' at line 8, column 1"),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains("after page 2, text that is not JSON: 'Done: 3 resources'"),
            "{}",
            err.message
        );
    }

    #[test]
    fn other_outputs_of_the_cli_and_python_say_what_they_are() {
        let cases = [
            (
                "RESOURCETAGMAPPINGLIST\tarn:aws:s3:::b\nTAGS\tA\t1\n",
                "--output text",
            ),
            (
                "ResourceTagMappingList:\n- ResourceARN: arn:aws:s3:::b\n",
                "--output yaml",
            ),
            (
                "{'ResourceTagMappingList': [{'ResourceARN': 'arn:aws:s3:::b', 'Tags': []}]}",
                "Python's repr",
            ),
        ];
        for (text, cause) in cases {
            let err = SnapshotSource::parse(text, "o.txt").err().unwrap();
            assert!(err.message.contains(cause), "{}", err.message);
        }
    }

    #[test]
    fn a_bad_field_is_an_issue_of_its_entry_and_the_rest_is_read() {
        let text = r#"{"ResourceTagMappingList": [
            {"ResourceARN": "arn:aws:s3:::a", "Tags": [{"Key": "CostCenter", "Value": 1234}]},
            {"ResourceARN": "arn:aws:s3:::b", "Tags": null},
            {"ResourceARN": "arn:aws:s3:::c", "Tags": "CostCenter=1"},
            {"ResourceARN": "arn:aws:s3:::d", "CreatedAt": 1714564800},
            {"ResourceARN": "arn:aws:s3:::e", "CreatedAt": "yesterday"},
            {"ResourceARN": "arn:aws:s3:::f", "MonthlyCost": "twelve"},
            {"ResourceARN": 42},
            "arn:aws:s3:::g",
            {"ResourceARN": "arn:aws:s3:::a", "Tags": []}
        ]}"#;
        let source = SnapshotSource::parse(text, "s.json").unwrap();
        let all = scan(&source, &ScanScope::default());
        let by_id = |id: &str| all.iter().find(|r| r.id == id);
        assert_eq!(by_id("a").unwrap().tags, [Tag::new("CostCenter", "1234")]);
        assert!(by_id("b").unwrap().tags.is_empty());
        assert!(
            by_id("c").is_none(),
            "tags of the wrong shape skip the entry"
        );
        assert_eq!(
            by_id("d").unwrap().created_at.unwrap().to_rfc3339(),
            "2024-05-01T12:00:00+00:00"
        );
        assert_eq!(by_id("e").unwrap().created_at, None);
        assert_eq!(by_id("f").unwrap().monthly_cost, None);
        assert_eq!(all.len(), 5, "a, b, d, e, f; the repeat of a counted once");
        let plan = plan(&source);
        let issues: Vec<&str> = plan.issues.iter().map(|i| i.message.as_str()).collect();
        assert_eq!(issues.len(), 5, "{issues:#?}");
        for (i, wanted) in [
            "entry 3 (line 4): Tags of 'arn:aws:s3:::c' is a string",
            "entry 5 (line 6): CreatedAt of 'arn:aws:s3:::e' 'yesterday' is not a time",
            "entry 6 (line 7): MonthlyCost of 'arn:aws:s3:::f'",
            "entry 7 (line 8): ResourceARN is a number, not a string",
            "entry 8 (line 9): expected an object with ResourceARN and Tags, found a string",
        ]
        .iter()
        .enumerate()
        {
            assert!(issues[i].contains(wanted), "{} lacks {wanted}", issues[i]);
        }
        let notes = plan.notes.join("\n");
        assert!(notes.contains("1 entry repeats an ARN"), "{notes}");
        assert!(
            notes.contains("'arn:aws:s3:::a' (entry 1 (line 2), again at entry 9 (line 10))"),
            "{notes}"
        );
        assert!(notes.contains("1 tag value written as a number"), "{notes}");
    }

    #[test]
    fn scope_filters_shards() {
        let source = SnapshotSource::parse(SAMPLE, "s.json").unwrap();
        let scope = ScanScope {
            regions: ["us-east-1".to_string()].into(),
            resource_types: [crate::domain::ResourceType::RdsDb].into(),
            ..ScanScope::default()
        };
        let all = scan(&source, &scope);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].id, "orders");
    }

    #[test]
    fn lookups_read_only_the_arns_asked_for() {
        let source = SnapshotSource::parse(SAMPLE, "s.json").unwrap();
        let scope = ScanScope {
            arns: [
                "arn:aws:rds:us-east-1:123456789012:db:orders".to_string(),
                "arn:aws:s3:::logs-bucket".to_string(),
                "arn:aws:s3:::absent".to_string(),
            ]
            .into(),
            ..ScanScope::default()
        };
        let mut ids: Vec<String> = scan(&source, &scope).into_iter().map(|r| r.id).collect();
        ids.sort();
        assert_eq!(ids, ["logs-bucket", "orders"]);
    }

    #[test]
    fn written_text_is_kept_and_bad_lines_of_loose_entries_are_skipped() {
        let text = "\u{feff}{\"ResourceARN\": \"arn:aws:s3:::a\", \"Tags\": {\"CostCenter\": 1.50}, \"CreatedAt\": 1700000000.123}\n\
                    {\"ResourceARN\": \"arn:aws:s3:::b\", oops}\n\
                    \u{feff}{\"ResourceARN\": \"arn:aws:s3:::c\", \"CreatedAt\": 1700000000123}\n";
        let source = SnapshotSource::parse(text, "l.json").unwrap();
        let all = scan(&source, &ScanScope::default());
        let by_id = |id: &str| all.iter().find(|r| r.id == id).unwrap();
        assert_eq!(by_id("a").tags, [Tag::new("CostCenter", "1.50")]);
        assert_eq!(
            by_id("a").created_at.unwrap().to_rfc3339(),
            "2023-11-14T22:13:20.123+00:00"
        );
        assert_eq!(
            by_id("c").created_at,
            by_id("a").created_at,
            "milliseconds read as such"
        );
        assert_eq!(all.len(), 2);
        let issues = plan(&source).issues;
        assert_eq!(issues.len(), 1);
        assert!(
            issues[0].message.contains(
                "line 2: '{\"ResourceARN\": \"arn:aws:s3:::b\", oops}' is not a JSON entry"
            ),
            "{}",
            issues[0].message
        );
    }

    #[test]
    fn a_filter_naming_nothing_of_the_snapshot_is_an_issue() {
        let source = SnapshotSource::parse(SAMPLE, "s.json").unwrap();
        let scope = ScanScope {
            regions: ["us-est-1".to_string()].into(),
            ..ScanScope::default()
        };
        let issues = source.filters_naming_nothing(&scope);
        assert_eq!(issues.len(), 1);
        assert!(
            issues[0].message.contains(
                "--regions names 'us-est-1', which no resource of snapshot 's.json' is in"
            ) && issues[0].message.contains("did you mean 'us-east-1'?"),
            "{}",
            issues[0].message
        );
        let fine = ScanScope {
            regions: ["us-east-1".to_string()].into(),
            accounts: ["123456789012".to_string()].into(),
            ..ScanScope::default()
        };
        assert!(source.filters_naming_nothing(&fine).is_empty());
    }

    #[test]
    fn exact_costs_and_missing_lists_are_read() {
        let text = r#"{"ResourceTagMappingList": [{"ResourceARN": "arn:aws:s3:::b", "MonthlyCost": "12.345678", "CostSource": "actual"}]}"#;
        let source = SnapshotSource::parse(text, "s.json").unwrap();
        let all = scan(&source, &ScanScope::default());
        assert_eq!(all[0].monthly_cost, Some(Usd::from_micros(12_345_678)));
        assert_eq!(all[0].cost_source, CostSource::Actual);
        let err = SnapshotSource::parse("{}", "s.json").err().unwrap();
        assert!(
            err.message
                .contains("neither ResourceTagMappingList nor ResourceARN"),
            "{}",
            err.message
        );
    }

    #[test]
    fn negative_cost_is_an_issue_and_unknown() {
        let text =
            r#"{"ResourceTagMappingList": [{"ResourceARN": "arn:aws:s3:::b", "MonthlyCost": -3}]}"#;
        let source = SnapshotSource::parse(text, "s.json").unwrap();
        assert_eq!(source.rejected.len(), 1);
        let all = scan(&source, &ScanScope::default());
        assert_eq!(all[0].monthly_cost, None);
    }

    #[test]
    fn bad_json_names_file_line_and_column() {
        let err = SnapshotSource::parse(
            "{\n \"ResourceTagMappingList\": [ {\"Tags\": [}\n]}",
            "s.json",
        )
        .err()
        .unwrap();
        assert!(
            err.message
                .starts_with("snapshot 's.json' at line 2, column"),
            "{}",
            err.message
        );
        let source = SnapshotSource::parse(
            "{\n \"ResourceTagMappingList\": [ {\"Tags\": []} ]\n}",
            "s.json",
        )
        .unwrap();
        assert!(
            plan(&source).issues[0]
                .message
                .contains("entry 1 (line 2): the entry has no ResourceARN")
        );
    }
}
