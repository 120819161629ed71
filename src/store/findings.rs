//! The stored form of a scan's findings: chunks of up to [`FINDINGS_PER_CHUNK`] violations,
//! grouped by resource (an ARN is written once, not once per violation), tag names and types
//! numbered within the chunk, then LZ4-compressed. A 1 M-resource scan's findings shrink from
//! about 110 MB of plain JSON to a few MB.

use serde::{Deserialize, Serialize};

use super::{StoreError, StoredFinding, decode, encode};
use crate::domain::{ScanResult, Severity, Violation};

/// Violations per stored chunk.
pub const FINDINGS_PER_CHUNK: usize = 10_000;

/// The first byte of a chunk: its format (1: LZ4 over compact JSON).
const FORMAT_LZ4_JSON: u8 = 1;

/// One resource's violations: (type number, [(violation type number, tag number, is error,
/// value)]).
type Row = (String, u16, Vec<(u16, u16, bool, Option<String>)>);

#[derive(Serialize, Deserialize, Default)]
struct Chunk {
    /// Names numbered by first use: resource types, violation types, tags.
    names: Vec<String>,
    rows: Vec<Row>,
}

impl Chunk {
    fn number(&mut self, name: &str) -> u16 {
        match self.names.iter().position(|n| n == name) {
            Some(i) => i as u16,
            None => {
                self.names.push(name.to_string());
                (self.names.len() - 1) as u16
            }
        }
    }
}

/// The chunks of a result's violations, ready to store: at least one, so that "stored, and
/// there were none" differs from "pruned".
pub fn encode_findings(result: &ScanResult) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    let all: Vec<&Violation> = result.violations().collect();
    let groups: Vec<&[&Violation]> = if all.is_empty() {
        vec![&[]]
    } else {
        all.chunks(FINDINGS_PER_CHUNK).collect()
    };
    for violations in groups {
        let mut chunk = Chunk::default();
        for v in violations {
            let kind = chunk.number(v.finding.violation_type.as_str());
            let tag = chunk.number(&v.finding.tag_name);
            let finding = (
                kind,
                tag,
                v.finding.severity == Severity::Error,
                v.finding.current_value.as_deref().map(str::to_string),
            );
            // Violations of one resource are consecutive (source order).
            match chunk.rows.last_mut() {
                Some((arn, _, list)) if *arn == v.resource.arn => list.push(finding),
                _ => {
                    let resource_type = chunk.number(v.resource.resource_type.as_str());
                    chunk
                        .rows
                        .push((v.resource.arn.clone(), resource_type, vec![finding]));
                }
            }
        }
        let mut bytes = vec![FORMAT_LZ4_JSON];
        bytes.extend(lz4_flex::compress_prepend_size(&encode(&chunk)));
        chunks.push(bytes);
    }
    chunks
}

/// The findings of one stored chunk.
pub fn decode_findings(bytes: &[u8]) -> Result<Vec<StoredFinding>, StoreError> {
    let corrupt = |what: &str| StoreError::Io(format!("a findings chunk is unreadable: {what}"));
    let (&format, body) = bytes.split_first().ok_or_else(|| corrupt("empty"))?;
    if format != FORMAT_LZ4_JSON {
        return Err(corrupt("unknown format"));
    }
    let json = lz4_flex::decompress_size_prepended(body).map_err(|e| corrupt(&e.to_string()))?;
    let chunk: Chunk = decode(&json)?;
    let name = |i: u16| -> Result<&str, StoreError> {
        chunk
            .names
            .get(i as usize)
            .map(String::as_str)
            .ok_or_else(|| corrupt("a name number out of range"))
    };
    let mut out = Vec::new();
    for (arn, resource_type, list) in &chunk.rows {
        let resource_type = name(*resource_type)?
            .parse()
            .map_err(|e: crate::domain::ResourceTypeError| corrupt(&e.to_string()))?;
        for (kind, tag, error, value) in list {
            out.push(StoredFinding {
                arn: arn.clone(),
                resource_type: Clone::clone(&resource_type),
                violation_type: name(*kind)?.parse().map_err(|e: String| corrupt(&e))?,
                tag: name(*tag)?.to_string(),
                severity: if *error {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                current_value: value.clone(),
            });
        }
    }
    Ok(out)
}
