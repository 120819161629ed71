//! Real ARN formats (`tests/data/arn-formats.tsv`) parsed through the public API, and the
//! property that every ARN printed from a known form parses back to the parts it was made of.

use proptest::prelude::*;
use tagguard::domain::arn_forms::{FORMS, FormScope};
use tagguard::domain::{Arn, form_placeholders, render_form};

const TABLE: &str = include_str!("../data/arn-formats.tsv");

#[test]
fn real_arn_formats_give_their_documented_parts() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for line in TABLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let columns: Vec<&str> = line.split('\t').collect();
        let [arn, partition, region, account, rtype, id, source] = columns[..] else {
            panic!("bad line in arn-formats.tsv: {line}");
        };
        assert!(source.starts_with("https://docs.aws.amazon.com/"), "{line}");
        let parsed = Arn::parse(arn).unwrap_or_else(|e| panic!("{arn}: {e}"));
        let got = (
            parsed.partition().to_string(),
            parsed.region().to_string(),
            parsed.account_id().to_string(),
            parsed.resource_type().to_string(),
            parsed.resource_id().to_string(),
        );
        let want = (
            partition.to_string(),
            region.to_string(),
            account.to_string(),
            rtype.to_string(),
            id.to_string(),
        );
        if got != want {
            wrong.push(format!("{arn}\n   got {got:?}\n  want {want:?}"));
        }
        assert_eq!(parsed.to_string(), arn, "printing is exact");
        checked += 1;
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(checked >= 150, "the table holds {checked} ARNs");
}

#[test]
fn every_partition_is_read() {
    let partitions: std::collections::BTreeSet<&str> = TABLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();
    for partition in ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"] {
        assert!(partitions.contains(partition), "{partition} missing");
    }
}

fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,11}"
}

fn rest() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,7}(/[A-Za-z0-9._-]{1,6}){0,2}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_arn_printed_from_a_form_parses_back_to_its_parts(
        index in 0..FORMS.len(),
        partition in prop::sample::select(vec!["aws", "aws-cn", "aws-us-gov", "aws-iso-b"]),
        region in "[a-z]{2}-[a-z]{4,7}-[1-9]",
        account in "[0-9]{12}",
        segments in prop::collection::vec(segment(), 6),
        rests in prop::collection::vec(rest(), 6),
    ) {
        let form = &FORMS[index];
        let placeholders = form_placeholders(form);
        let id_at = placeholders.iter().position(|p| p.is_id);
        let values: Vec<&str> = placeholders
            .iter()
            .enumerate()
            .map(|(i, p)| if p.is_rest { rests[i].as_str() } else { segments[i].as_str() })
            .collect();
        let text = render_form(form, partition, &region, &account, &values);
        let arn = Arn::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(arn.partition(), partition);
        prop_assert_eq!(arn.service(), form.0);
        let (want_region, want_account) = match form.3 {
            FormScope::Regional => (region.as_str(), account.as_str()),
            FormScope::Global => ("", account.as_str()),
            FormScope::NoAccount => (region.as_str(), ""),
            FormScope::Neither => ("", ""),
        };
        prop_assert_eq!(arn.region(), want_region);
        prop_assert_eq!(arn.account_id(), want_account);
        prop_assert_eq!(arn.resource_type().to_string(), format!("{}:{}", form.0, form.1), "{}", text);
        match id_at {
            Some(i) => prop_assert_eq!(arn.resource_id(), values[i], "{}", text),
            None => prop_assert_eq!(arn.resource_id(), arn.resource(), "{}", text),
        }
        prop_assert_eq!(arn.to_string(), text);
    }
}
