//! Amazon Resource Names: parsing every AWS form and deriving the resource type and id.
//!
//! An ARN is `arn:partition:service:region:account-id:resource`, where `resource` may itself hold
//! `:` and `/` (`instance/i-1`, `db:orders`, `function:f:alias`, `service/cluster/name`,
//! `/restapis/a1/stages/prod`), and where region and account may be empty (S3 buckets:
//! `arn:aws:s3:::bucket`). The type and id come from the first form of `arn_forms.rs` the
//! resource part matches; an ARN no form matches gets the generic reading: the type is the
//! text before the first `/` or `:` (for a path such as `/things/t1/parts/p2`, the last
//! collection: `parts`), the id what follows it.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::sync::LazyLock;

use super::ResourceType;
use super::arn_forms::{FORMS, FormRow, FormScope, SCOPE_DECIDES};

/// A parsed ARN. Keeps the original text so that printing it back is exact.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arn {
    text: String,
    /// Byte offsets of the five `:` separators, so the parts are slices without copies.
    separators: [usize; 5],
    resource_type: ResourceType,
    /// Where the id is in `text`.
    id: Range<usize>,
}

/// Why a string is not an ARN. Quotes the input so the user can find it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    /// The text does not start with `arn:`.
    #[error("'{0}' is not an ARN: it must start with 'arn:'")]
    MissingPrefix(String),
    /// Fewer than six `:`-separated parts.
    #[error("'{0}' is not an ARN: expected arn:partition:service:region:account:resource")]
    TooFewParts(String),
    /// Partition, service or resource is empty.
    #[error("'{input}' is not an ARN: the {part} is empty")]
    EmptyPart {
        /// The offending input.
        input: String,
        /// Which part is empty.
        part: &'static str,
    },
    /// The partition is not `aws` or `aws-…`.
    #[error(
        "'{0}' is not an ARN: the partition must be 'aws' or start with 'aws-' (aws-cn, aws-us-gov, ...)"
    )]
    BadPartition(String),
    /// The account is present but is not 12 digits (or `aws` for AWS-managed resources).
    #[error("'{0}' is not an ARN: the account id must be 12 digits")]
    BadAccount(String),
    /// The text holds a control character, a zero-width character or a space other than the
    /// plain one: characters no ARN has, usually pasted in with it.
    #[error("'{input}' is not an ARN: it contains {what}")]
    BadCharacter {
        /// The offending input, with invisible characters written as code points.
        input: String,
        /// The character, named.
        what: String,
    },
}

/// One compiled form of `arn_forms.rs`.
struct Form {
    resource_type: ResourceType,
    tokens: Vec<Token>,
    scope: FormScope,
    /// Whether the ARN's region and account must match `scope` (see `SCOPE_DECIDES`).
    scope_decides: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(&'static str),
    /// One or more characters without `/` or `:`; `true` when it is the id.
    Segment(bool),
    /// One or more characters of any kind; `true` when it is the id.
    Rest(bool),
}

/// Splits a form's pattern into tokens.
fn tokenize(pattern: &'static str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut rest = pattern;
    while !rest.is_empty() {
        match rest.find('{') {
            Some(0) => {
                let end = rest.find('}').expect("forms close their placeholders");
                tokens.push(match &rest[1..end] {
                    "id" => Token::Segment(true),
                    "" => Token::Segment(false),
                    "id*" => Token::Rest(true),
                    "*" => Token::Rest(false),
                    other => panic!("unknown placeholder {{{other}}} in an ARN form"),
                });
                rest = &rest[end + 1..];
            }
            Some(i) => {
                tokens.push(Token::Literal(&rest[..i]));
                rest = &rest[i..];
            }
            None => {
                tokens.push(Token::Literal(rest));
                rest = "";
            }
        }
    }
    tokens
}

/// The forms per service, the most specific (most literal text) first.
static FORMS_BY_SERVICE: LazyLock<HashMap<&'static str, Vec<Form>>> = LazyLock::new(|| {
    let mut by_service: HashMap<&'static str, Vec<(usize, Form)>> = HashMap::new();
    for &(service, kind, pattern, scope, _) in FORMS {
        let tokens = tokenize(pattern);
        let literal: usize = tokens
            .iter()
            .map(|t| match t {
                Token::Literal(l) => l.len(),
                _ => 0,
            })
            .sum();
        by_service.entry(service).or_default().push((
            literal,
            Form {
                resource_type: ResourceType::from_parts(service, kind),
                tokens,
                scope,
                scope_decides: SCOPE_DECIDES.contains(&service),
            },
        ));
    }
    by_service
        .into_iter()
        .map(|(service, mut forms)| {
            forms.sort_by_key(|f| std::cmp::Reverse(f.0));
            (service, forms.into_iter().map(|(_, f)| f).collect())
        })
        .collect()
});

/// Every resource type of the forms table, sorted, each once.
pub(crate) static KNOWN_TYPES: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut types: Vec<String> = FORMS
        .iter()
        .map(|(service, kind, ..)| format!("{service}:{kind}"))
        .collect();
    types.sort();
    types.dedup();
    types
});

/// Matches `tokens` against `text[at..]` to its end; on success returns the id's range if a
/// token captured one. Placeholders take the longest text that lets the rest match.
fn match_tokens(tokens: &[Token], text: &str, at: usize) -> Option<Option<Range<usize>>> {
    let Some((first, rest)) = tokens.split_first() else {
        return (at == text.len()).then_some(None);
    };
    match first {
        Token::Literal(literal) => text[at..]
            .starts_with(literal)
            .then(|| match_tokens(rest, text, at + literal.len()))
            .flatten(),
        Token::Segment(is_id) | Token::Rest(is_id) => {
            let limit = match first {
                Token::Segment(_) => text[at..].find(['/', ':']).map_or(text.len(), |i| at + i),
                _ => text.len(),
            };
            (at + 1..=limit)
                .rev()
                .filter(|end| text.is_char_boundary(*end))
                .find_map(|end| {
                    match_tokens(rest, text, end)
                        .map(|inner| if *is_id { Some(at..end) } else { inner })
                })
        }
    }
}

impl FormScope {
    fn admits(self, region: &str, account: &str) -> bool {
        let (has_region, has_account) = match self {
            FormScope::Regional => (true, true),
            FormScope::Global => (false, true),
            FormScope::NoAccount => (true, false),
            FormScope::Neither => (false, false),
        };
        has_region != region.is_empty() && has_account != account.is_empty()
    }
}

/// The generic reading of a resource part no form matches: `(type, id range in resource)`.
fn generic(service: &str, resource: &str) -> (ResourceType, Range<usize>) {
    if let Some(path) = resource.strip_prefix('/') {
        // A REST path: collection/id pairs; the resource is the last collection's item.
        let path = path.strip_suffix('/').unwrap_or(path);
        let mut starts = Vec::new();
        let mut offset = 1;
        for segment in path.split('/') {
            starts.push((offset, segment));
            offset += segment.len() + 1;
        }
        let n = starts.len();
        let k = if n % 2 == 0 { n - 2 } else { n - 1 };
        let (_, kind) = starts[k];
        if kind.is_empty() {
            return (
                ResourceType::from_parts(service, service),
                0..resource.len(),
            );
        }
        let id = match starts.get(k + 1) {
            Some(&(start, _)) => start..1 + path.len(),
            None => 0..resource.len(),
        };
        return (ResourceType::from_parts(service, kind), id);
    }
    match resource.find(['/', ':']) {
        Some(i) if i > 0 => (
            ResourceType::from_parts(service, &resource[..i]),
            i + 1..resource.len(),
        ),
        _ => (
            ResourceType::from_parts(service, service),
            0..resource.len(),
        ),
    }
}

/// The type and the id's range in `resource` of a resource part of `service`.
fn derive(
    service: &str,
    region: &str,
    account: &str,
    resource: &str,
) -> (ResourceType, Range<usize>) {
    if let Some(forms) = FORMS_BY_SERVICE.get(service) {
        for form in forms {
            if form.scope_decides && !form.scope.admits(region, account) {
                continue;
            }
            if let Some(id) = match_tokens(&form.tokens, resource, 0) {
                return (form.resource_type.clone(), id.unwrap_or(0..resource.len()));
            }
        }
    }
    generic(service, resource)
}

/// Prints the ARN of a form of `arn_forms::FORMS` with `values` for its placeholders, in
/// order; region and account are left out where the form's scope has none.
pub fn render_form(
    form: &FormRow,
    partition: &str,
    region: &str,
    account: &str,
    values: &[&str],
) -> String {
    let (service, _, pattern, scope, _) = *form;
    let (region, account) = match scope {
        FormScope::Regional => (region, account),
        FormScope::Global => ("", account),
        FormScope::NoAccount => (region, ""),
        FormScope::Neither => ("", ""),
    };
    let mut resource = String::new();
    let mut values = values.iter();
    for token in tokenize(pattern) {
        match token {
            Token::Literal(literal) => resource.push_str(literal),
            Token::Segment(_) | Token::Rest(_) => {
                resource.push_str(values.next().copied().unwrap_or("x"));
            }
        }
    }
    format!("arn:{partition}:{service}:{region}:{account}:{resource}")
}

/// One placeholder of a form's pattern, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placeholder {
    /// It is the resource id.
    pub is_id: bool,
    /// It takes any text (`{*}`) rather than one segment without `/` or `:`.
    pub is_rest: bool,
}

/// The placeholders of a form's pattern, in order.
pub fn form_placeholders(form: &FormRow) -> Vec<Placeholder> {
    tokenize(form.2)
        .into_iter()
        .filter_map(|token| match token {
            Token::Segment(is_id) => Some(Placeholder {
                is_id,
                is_rest: false,
            }),
            Token::Rest(is_id) => Some(Placeholder {
                is_id,
                is_rest: true,
            }),
            Token::Literal(_) => None,
        })
        .collect()
}

impl Arn {
    /// Parses an ARN of any partition (`aws`, `aws-cn`, `aws-us-gov`, `aws-iso`, ...) and
    /// derives its type and id.
    pub fn parse(text: &str) -> Result<Arn, ArnError> {
        let text = text.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\n' || c == '\r');
        if let Some(bad) = text.chars().find(|c| super::text::is_invisible(*c)) {
            return Err(ArnError::BadCharacter {
                input: super::text::show(text).into_owned(),
                what: super::text::name_char(bad),
            });
        }
        if !text.starts_with("arn:") {
            return Err(ArnError::MissingPrefix(text.to_string()));
        }
        let mut separators = [0usize; 5];
        let mut found = 0;
        for (i, b) in text.bytes().enumerate() {
            if b == b':' {
                separators[found] = i;
                found += 1;
                if found == 5 {
                    break;
                }
            }
        }
        if found < 5 {
            return Err(ArnError::TooFewParts(text.to_string()));
        }
        let part = |index: usize| &text[separators[index - 1] + 1..separators[index]];
        let resource = &text[separators[4] + 1..];
        for (name, value) in [
            ("partition", part(1)),
            ("service", part(2)),
            ("resource", resource),
        ] {
            if value.is_empty() {
                return Err(ArnError::EmptyPart {
                    input: text.to_string(),
                    part: name,
                });
            }
        }
        let partition = part(1);
        let partition_ok = partition == "aws"
            || partition.strip_prefix("aws-").is_some_and(|rest| {
                !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
            });
        if !partition_ok {
            return Err(ArnError::BadPartition(text.to_string()));
        }
        let account = part(4);
        let account_ok = account.is_empty() || account == "aws" || super::is_account_id(account);
        if !account_ok {
            return Err(ArnError::BadAccount(text.to_string()));
        }
        let (resource_type, id) = derive(part(2), part(3), account, resource);
        let offset = separators[4] + 1;
        Ok(Arn {
            text: text.to_string(),
            separators,
            resource_type,
            id: offset + id.start..offset + id.end,
        })
    }

    fn part(&self, index: usize) -> &str {
        let start = self.separators[index - 1] + 1;
        let end = self.separators[index];
        &self.text[start..end]
    }

    /// The whole ARN as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `aws`, `aws-cn`, `aws-us-gov`, ...
    pub fn partition(&self) -> &str {
        self.part(1)
    }

    /// The service namespace, e.g. `ec2`.
    pub fn service(&self) -> &str {
        self.part(2)
    }

    /// The region; empty for global resources such as S3 buckets and IAM.
    pub fn region(&self) -> &str {
        self.part(3)
    }

    /// The account id; empty for S3 buckets, Route 53 and API Gateway.
    pub fn account_id(&self) -> &str {
        self.part(4)
    }

    /// Everything after the fifth `:`.
    pub fn resource(&self) -> &str {
        &self.text[self.separators[4] + 1..]
    }

    /// The resource type as `service:type`, e.g. `ec2:instance`, `rds:db`, `s3:bucket`,
    /// `apigateway:stages`, `wafv2:webacl`.
    pub fn resource_type(&self) -> ResourceType {
        self.resource_type.clone()
    }

    /// The resource id, as its form names it: for `instance/i-1` it is `i-1`; for
    /// `service/cluster/web` it is `cluster/web`; for a bucket the bucket name; for a Lambda
    /// function with a version or alias (`function:f:prod`) the function name; for a log group
    /// its name without the trailing `:*`; for an IAM role with a path, the role's name.
    pub fn resource_id(&self) -> &str {
        &self.text[self.id.clone()]
    }
}

impl FromStr for Arn {
    type Err = ArnError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arn::parse(s)
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (String, String, String, String, String) {
        let arn = Arn::parse(text).expect("valid ARN in test");
        (
            arn.service().to_string(),
            arn.region().to_string(),
            arn.account_id().to_string(),
            arn.resource_type().to_string(),
            arn.resource_id().to_string(),
        )
    }

    #[test]
    fn parses_each_aws_form() {
        let cases = [
            (
                "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc",
                ("ec2", "us-east-1", "123456789012", "ec2:instance", "i-0abc"),
            ),
            (
                "arn:aws:rds:eu-west-1:123456789012:db:orders-db",
                ("rds", "eu-west-1", "123456789012", "rds:db", "orders-db"),
            ),
            (
                "arn:aws:s3:::my-bucket",
                ("s3", "", "", "s3:bucket", "my-bucket"),
            ),
            (
                "arn:aws:s3:::my-bucket/logs/2024/a.gz",
                ("s3", "", "", "s3:object", "my-bucket/logs/2024/a.gz"),
            ),
            (
                "arn:aws:lambda:us-west-2:123456789012:function:resize:prod",
                (
                    "lambda",
                    "us-west-2",
                    "123456789012",
                    "lambda:function",
                    "resize",
                ),
            ),
            (
                "arn:aws:ecs:us-east-1:123456789012:service/prod-cluster/web",
                (
                    "ecs",
                    "us-east-1",
                    "123456789012",
                    "ecs:service",
                    "prod-cluster/web",
                ),
            ),
            (
                "arn:aws-cn:sns:cn-north-1:123456789012:alerts",
                ("sns", "cn-north-1", "123456789012", "sns:topic", "alerts"),
            ),
            (
                "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/x:*",
                (
                    "logs",
                    "us-east-1",
                    "123456789012",
                    "logs:log-group",
                    "/aws/lambda/x",
                ),
            ),
            (
                "arn:aws:iam::123456789012:role/service-role/admin",
                ("iam", "", "123456789012", "iam:role", "admin"),
            ),
            (
                "arn:aws:apigateway:us-east-1::/restapis/a1b2c3/stages/prod",
                ("apigateway", "us-east-1", "", "apigateway:stages", "prod"),
            ),
            (
                "arn:aws:s3:us-west-2:123456789012:accesspoint/finance-ap",
                (
                    "s3",
                    "us-west-2",
                    "123456789012",
                    "s3:accesspoint",
                    "finance-ap",
                ),
            ),
        ];
        for (text, (service, region, account, rtype, id)) in cases {
            assert_eq!(
                parsed(text),
                (
                    service.to_string(),
                    region.to_string(),
                    account.to_string(),
                    rtype.to_string(),
                    id.to_string()
                ),
                "for {text}"
            );
        }
    }

    #[test]
    fn the_generic_reading_covers_services_without_forms() {
        assert_eq!(
            parsed("arn:aws:newsvc:us-east-1:123456789012:widget/w-1").3,
            "newsvc:widget"
        );
        let path = parsed("arn:aws:newsvc:us-east-1:123456789012:/things/t1/parts/p2");
        assert_eq!((path.3.as_str(), path.4.as_str()), ("newsvc:parts", "p2"));
        assert_eq!(
            parsed("arn:aws:newsvc:us-east-1:123456789012:plain").3,
            "newsvc:newsvc"
        );
    }

    #[test]
    fn rejects_malformed_arns_quoting_the_input() {
        for bad in [
            "",
            "i-0abc",
            "arn:aws:ec2",
            "arn::ec2:us-east-1:123456789012:instance/i-1",
            "arn:aws::us-east-1:123456789012:instance/i-1",
            "arn:aws:ec2:us-east-1:123456789012:",
            "arn:aws:ec2:us-east-1:12345:instance/i-1",
            "arn:amazon:ec2:us-east-1:123456789012:instance/i-1",
        ] {
            let err = Arn::parse(bad).expect_err(bad);
            assert!(
                err.to_string().contains(&format!("'{}'", bad.trim())),
                "{err}"
            );
        }
    }

    #[test]
    fn invisible_characters_are_named_not_printed() {
        let err = Arn::parse("arn:aws:s3:::my\u{200B}bucket").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("my<U+200B>bucket"), "{message}");
        assert!(message.contains("U+200B (zero-width space)"), "{message}");
        let err = Arn::parse("arn:aws:s3:::a\u{1b}[2Jb")
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\u{1b}'), "{err}");
    }

    #[test]
    fn display_round_trips() {
        let text = "arn:aws:ecs:us-east-1:123456789012:service/c/web";
        assert_eq!(Arn::parse(text).unwrap().to_string(), text);
    }

    #[test]
    fn every_known_type_derives_from_an_arn_of_its_form() {
        for form in FORMS {
            let count = form_placeholders(form).len();
            let values: Vec<String> = (0..count).map(|i| format!("v{i}")).collect();
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            let text = render_form(form, "aws", "us-east-1", "123456789012", &values);
            let arn = Arn::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                arn.resource_type().as_str(),
                format!("{}:{}", form.0, form.1),
                "{text}"
            );
        }
        assert!(KNOWN_TYPES.len() > 250, "{}", KNOWN_TYPES.len());
    }
}
