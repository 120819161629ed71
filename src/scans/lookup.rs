//! Where given ARNs are looked for: the scopes of the lookups that find them.

use std::collections::BTreeSet;

use crate::domain::{Arn, ScanScope};

/// The lookups that find the ARNs: one over exactly the regions and accounts the ARNs name;
/// for ARNs that name an account but no region (IAM roles, global resources), one in those
/// accounts over the server's regions; for ARNs that name neither (S3 buckets), one over the
/// server's own regions and accounts, where they can only be looked for.
pub fn lookup_scopes(arns: &[&Arn], server: &ScanScope) -> Vec<ScanScope> {
    let scope = |arns: &[&Arn], regions: BTreeSet<String>, accounts: BTreeSet<String>| ScanScope {
        resource_types: arns.iter().map(|a| a.resource_type()).collect(),
        regions,
        accounts,
        arns: arns.iter().map(|a| a.as_str().to_string()).collect(),
    };
    let placed: Vec<&Arn> = arns
        .iter()
        .copied()
        .filter(|a| !a.region().is_empty() && !a.account_id().is_empty())
        .collect();
    let in_account: Vec<&Arn> = arns
        .iter()
        .copied()
        .filter(|a| a.region().is_empty() && !a.account_id().is_empty())
        .collect();
    let nowhere: Vec<&Arn> = arns
        .iter()
        .copied()
        .filter(|a| a.account_id().is_empty())
        .collect();
    let accounts_of = |arns: &[&Arn]| arns.iter().map(|a| a.account_id().to_string()).collect();
    let mut scopes = Vec::new();
    if !placed.is_empty() {
        scopes.push(scope(
            &placed,
            placed.iter().map(|a| a.region().to_string()).collect(),
            accounts_of(&placed),
        ));
    }
    if !in_account.is_empty() {
        scopes.push(scope(
            &in_account,
            server.regions.clone(),
            accounts_of(&in_account),
        ));
    }
    if !nowhere.is_empty() {
        scopes.push(scope(
            &nowhere,
            server.regions.clone(),
            server.accounts.clone(),
        ));
    }
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_without_a_place_are_looked_for_where_the_server_looks() {
        let ec2 = Arn::parse("arn:aws:ec2:us-east-1:123456789012:instance/i-1").unwrap();
        let s3 = Arn::parse("arn:aws:s3:::my-bucket").unwrap();
        let server = ScanScope {
            regions: ["eu-west-1".to_string()].into(),
            accounts: ["210987654321".to_string()].into(),
            ..ScanScope::default()
        };
        let scopes = lookup_scopes(&[&ec2], &server);
        assert_eq!(scopes.len(), 1);
        assert_eq!(scopes[0].regions, ["us-east-1".to_string()].into());
        assert_eq!(scopes[0].accounts, ["123456789012".to_string()].into());
        let scopes = lookup_scopes(&[&ec2, &s3], &server);
        assert_eq!(scopes.len(), 2);
        assert_eq!(scopes[1].regions, server.regions);
        assert_eq!(scopes[1].accounts, server.accounts);
        assert_eq!(
            scopes[1].arns,
            ["arn:aws:s3:::my-bucket".to_string()].into()
        );
        // An ARN that names its account but no region is looked for in its own account, even
        // beside a bucket that names neither.
        let role = Arn::parse("arn:aws:iam::222222222222:role/x").unwrap();
        let scopes = lookup_scopes(&[&s3, &role], &server);
        assert_eq!(scopes.len(), 2);
        assert_eq!(scopes[0].accounts, ["222222222222".to_string()].into());
        assert_eq!(scopes[1].accounts, server.accounts);
    }
}
