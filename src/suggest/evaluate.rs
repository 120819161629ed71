//! The evaluation of suggestions: hide the known tags of compliant resources, predict them
//! from the rest of the estate, and compare; on the demo estate, also predict the tags its
//! generator meant broken resources to carry. A reliability table per confidence band and
//! the coverage of confident suggestions.

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;

use super::{CONFIDENT, Evidence, Problem, Subject, suggest_tag, tags_to_suggest};
use crate::domain::{Resource, Severity, Tag, eq_ignore_case};
use crate::policy::Policy;

/// The bands of the reliability table: [low, high).
pub const BANDS: [(f64, f64); 8] = [
    (0.0, 0.2),
    (0.2, 0.4),
    (0.4, 0.6),
    (0.6, 0.7),
    (0.7, 0.8),
    (0.8, 0.9),
    (0.9, 0.95),
    (0.95, 1.0001),
];

/// Top suggestions whose confidence fell in one band, and how many were right.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct Band {
    /// Lowest confidence of the band.
    pub low: f64,
    /// Highest (exclusive; the last band includes 1).
    pub high: f64,
    /// Top suggestions in the band.
    pub suggestions: u64,
    /// Of them, right.
    pub right: u64,
    /// Their mean confidence (what a calibrated accuracy should be near).
    pub mean_confidence: Option<f64>,
    /// `right / suggestions`.
    pub accuracy: Option<f64>,
}

/// One set of predictions: how many tags were asked, answered, confidently answered, right.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct Measured {
    /// Tags predicted.
    pub tags: u64,
    /// Of them, with a candidate.
    pub offered: u64,
    /// With a top candidate of confidence 0.8 or more.
    pub confident: u64,
    /// Of those, right.
    pub confident_right: u64,
    /// Tags whose top candidate, whatever its confidence, is right.
    pub top_right: u64,
    /// `confident / tags`: the share of tags a confident suggestion covers.
    pub coverage: Option<f64>,
    /// `confident_right / confident`: at least 0.9 is the aim.
    pub confident_accuracy: Option<f64>,
    /// The reliability table.
    pub bands: Vec<Band>,
    #[serde(skip)]
    confidence_sums: Vec<f64>,
}

impl Measured {
    fn empty() -> Measured {
        Measured {
            bands: BANDS
                .iter()
                .map(|(low, high)| Band {
                    low: *low,
                    high: high.min(1.0),
                    ..Band::default()
                })
                .collect(),
            confidence_sums: vec![0.0; BANDS.len()],
            ..Measured::default()
        }
    }

    fn count(&mut self, top: Option<(f64, bool)>) {
        self.tags += 1;
        let Some((confidence, right)) = top else {
            return;
        };
        self.offered += 1;
        self.top_right += u64::from(right);
        if confidence >= CONFIDENT {
            self.confident += 1;
            self.confident_right += u64::from(right);
        }
        let band = BANDS
            .iter()
            .position(|(low, high)| confidence >= *low && confidence < *high)
            .unwrap_or(BANDS.len() - 1);
        self.bands[band].suggestions += 1;
        self.bands[band].right += u64::from(right);
        self.confidence_sums[band] += confidence;
    }

    fn finish(&mut self) {
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        self.coverage = ratio(self.confident, self.tags);
        self.confident_accuracy = ratio(self.confident_right, self.confident);
        for (band, sum) in self.bands.iter_mut().zip(&self.confidence_sums) {
            band.accuracy = ratio(band.right, band.suggestions);
            band.mean_confidence = (band.suggestions > 0).then(|| sum / band.suggestions as f64);
        }
    }
}

/// What an evaluation measured.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Evaluation {
    /// Resources read.
    pub resources: u64,
    /// Compliant resources whose tags were hidden one at a time.
    pub compliant: u64,
    /// Hidden known tags, predicted from the rest of the estate.
    pub hidden: Measured,
    /// The same, per tag.
    pub per_tag: BTreeMap<String, Measured>,
    /// On the demo estate: the missing tags of broken resources, judged against the values
    /// the generator meant them to carry.
    pub intended: Option<Measured>,
}

/// Evaluates suggestions on `resources` (every resource of a scan, with `evidence` from the
/// same scan). With `intended` (the demo's record), also judges the missing tags of broken
/// resources against the values they were meant to have.
pub fn evaluate(
    policy: &Policy,
    evidence: &Evidence,
    resources: &[Resource],
    intended: Option<&BTreeMap<String, Vec<Tag>>>,
) -> Evaluation {
    let mut hidden = Measured::empty();
    let mut per_tag: BTreeMap<String, Measured> = BTreeMap::new();
    let mut broken = intended.map(|_| Measured::empty());
    let mut compliant = 0;
    let ignore_case = !policy.naming().case_sensitivity;
    for resource in resources {
        let findings = policy.validate(&resource.resource_type, &resource.tags);
        if findings.iter().all(|f| f.severity != Severity::Error) {
            if !policy.applies_to_type(&resource.resource_type) {
                continue;
            }
            compliant += 1;
            let asked: Vec<Arc<str>> = policy
                .required_tags()
                .iter()
                .filter(|r| r.applies_to(&resource.resource_type))
                .map(|r| r.name.clone())
                .collect();
            for (tag, problem, value) in tags_to_suggest(policy, resource, &findings, Some(&asked))
            {
                // Only clean values are hidden: a warning on the tag means its value is not
                // what a suggestion should reproduce.
                let (Problem::Requested, Some(value)) = (problem, value) else {
                    continue;
                };
                let subject = Subject {
                    resource,
                    findings: &findings,
                    hidden: Some(&value),
                };
                let s = suggest_tag(policy, evidence, &subject, &tag, Problem::Missing, None);
                let top = s
                    .candidates
                    .first()
                    .map(|c| (c.confidence, c.value == value));
                hidden.count(top);
                per_tag
                    .entry(tag.to_string())
                    .or_insert_with(Measured::empty)
                    .count(top);
            }
        } else if let (Some(broken), Some(intended)) = (&mut broken, intended) {
            let Some(meant) = intended.get(&resource.arn) else {
                continue;
            };
            for (tag, problem, _) in tags_to_suggest(policy, resource, &findings, None) {
                if problem != Problem::Missing {
                    continue;
                }
                let Some(truth) = meant.iter().find(|t| {
                    if ignore_case {
                        eq_ignore_case(&t.key, &tag)
                    } else {
                        t.key == *tag
                    }
                }) else {
                    continue;
                };
                let subject = Subject {
                    resource,
                    findings: &findings,
                    hidden: None,
                };
                let s = suggest_tag(policy, evidence, &subject, &tag, problem, None);
                broken.count(
                    s.candidates
                        .first()
                        .map(|c| (c.confidence, c.value == truth.value)),
                );
            }
        }
    }
    hidden.finish();
    for m in per_tag.values_mut() {
        m.finish();
    }
    if let Some(b) = &mut broken {
        b.finish();
    }
    Evaluation {
        resources: resources.len() as u64,
        compliant,
        hidden,
        per_tag,
        intended: broken,
    }
}
