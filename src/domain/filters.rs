//! Turning the lists a user types (resource types, regions, accounts) into a checked [`ScanScope`].
//!
//! The CLI and the MCP tools take the same lists; both go through [`parse_scope`], so a typo
//! gets the same answer from either, named after the option or field the caller used.

use std::collections::BTreeSet;

use super::{ResourceType, ScanScope, TypeCheck};

/// The names the caller gave its three lists, for error messages (`--regions` on the command
/// line, `filters.regions` in a tool call).
#[derive(Debug, Clone, Copy)]
pub struct ScopeFieldNames {
    /// Name of the resource-type list.
    pub resource_types: &'static str,
    /// Name of the region list.
    pub regions: &'static str,
    /// Name of the account list.
    pub accounts: &'static str,
}

impl ScopeFieldNames {
    /// The options of the command line.
    pub const CLI: ScopeFieldNames = ScopeFieldNames {
        resource_types: "--resource-types",
        regions: "--regions",
        accounts: "--accounts",
    };

    /// The arguments of the MCP tools.
    pub const TOOL: ScopeFieldNames = ScopeFieldNames {
        resource_types: "resource_types",
        regions: "regions",
        accounts: "account_ids",
    };
}

/// A checked scope, and what the keywords in the lists asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedScope {
    /// The filters; `all` and `organization` leave their list empty.
    pub scope: ScanScope,
    /// `all` was given as the region list: every enabled region (AWS).
    pub all_regions: bool,
    /// `organization` was given as the account list: every active account (AWS).
    pub organization: bool,
    /// Things worth saying that are not errors (a type tagguard does not know, say).
    pub warnings: Vec<String>,
}

/// Checks the lists and builds the scope. Values are trimmed; `all` among resource types is
/// ignored (all types); `all` alone as regions and `organization` alone as accounts select
/// rather than filter. Errors quote the offending value.
pub fn parse_scope(
    names: ScopeFieldNames,
    resource_types: &[String],
    regions: &[String],
    accounts: &[String],
) -> Result<ParsedScope, String> {
    let mut parsed = ParsedScope::default();
    let mut types = BTreeSet::new();
    for text in resource_types
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty() && *t != "all")
    {
        let resource_type = text.parse::<ResourceType>().map_err(|e| e.to_string())?;
        match resource_type.check() {
            TypeCheck::Known => {}
            TypeCheck::WrongCase(known) => {
                return Err(format!(
                    "'{text}' is not a resource type; types are case-sensitive: did you mean '{known}'?"
                ));
            }
            TypeCheck::Unknown => parsed.warnings.push(format!(
                "'{text}' is not a resource type tagguard knows; if it is a typo, nothing will match it"
            )),
        }
        types.insert(resource_type);
    }
    for (name, values, keyword) in [
        (names.regions, regions, "all"),
        (names.accounts, accounts, "organization"),
    ] {
        if values.iter().any(|v| v.trim().is_empty()) {
            return Err(format!("{name} has an empty value: {}", values.join(",")));
        }
        if values.len() > 1 && values.iter().any(|v| v.trim() == keyword) {
            return Err(format!(
                "{name} takes either '{keyword}' or a list, not both: {}",
                values.join(",")
            ));
        }
    }
    parsed.all_regions = regions.iter().any(|r| r.trim() == "all");
    parsed.organization = accounts.iter().any(|a| a.trim() == "organization");
    let mut region_set = BTreeSet::new();
    for region in regions.iter().map(|r| r.trim()).filter(|r| *r != "all") {
        if !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!(
                "'{region}' in {} is not a region: regions are lowercase, e.g. 'us-east-1'",
                names.regions
            ));
        }
        region_set.insert(region.to_string());
    }
    let mut account_set = BTreeSet::new();
    for account in accounts
        .iter()
        .map(|a| a.trim())
        .filter(|a| *a != "organization")
    {
        if !super::is_account_id(account) {
            return Err(format!(
                "'{account}' in {} is not an account id: expected 12 digits",
                names.accounts
            ));
        }
        account_set.insert(account.to_string());
    }
    parsed.scope = ScanScope {
        resource_types: types,
        regions: region_set,
        accounts: account_set,
        ..ScanScope::default()
    };
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: ScopeFieldNames = ScopeFieldNames::TOOL;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lists_become_filters_and_keywords_select() {
        let parsed = parse_scope(
            NAMES,
            &strings(&["ec2:instance", " s3:bucket ", "all"]),
            &strings(&["all"]),
            &strings(&["123456789012"]),
        )
        .unwrap();
        assert_eq!(parsed.scope.resource_types.len(), 2);
        assert!(parsed.all_regions && parsed.scope.regions.is_empty());
        assert!(!parsed.organization);
        assert_eq!(parsed.scope.accounts.len(), 1);
    }

    #[test]
    fn errors_quote_the_value_and_name_the_field() {
        let err = |types: &[&str], regions: &[&str], accounts: &[&str]| {
            parse_scope(
                NAMES,
                &strings(types),
                &strings(regions),
                &strings(accounts),
            )
            .unwrap_err()
        };
        assert!(err(&["S3:Bucket"], &[], &[]).contains("did you mean 's3:bucket'"));
        assert!(err(&[], &["US-EAST-1"], &[]).contains("'US-EAST-1' in regions"));
        assert!(err(&[], &[], &["12"]).contains("'12' in account_ids"));
        assert!(err(&[], &["all", "us-east-1"], &[]).contains("either 'all' or a list"));
        assert!(err(&[], &[], &[" "]).contains("account_ids has an empty value"));
    }

    #[test]
    fn unknown_types_warn_but_pass() {
        let parsed = parse_scope(NAMES, &strings(&["acme:widget"]), &[], &[]).unwrap();
        assert_eq!(parsed.warnings.len(), 1);
    }
}
