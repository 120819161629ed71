//! Amazon Resource Names: parsing every AWS form and deriving the resource type and id.
//!
//! An ARN is `arn:partition:service:region:account-id:resource`, where `resource` may itself hold
//! `:` and `/` (`instance/i-1`, `db:orders`, `function:f:alias`, `service/cluster/name`), and where
//! region and account may be empty (S3 buckets: `arn:aws:s3:::bucket`).

use std::fmt;
use std::str::FromStr;

use super::ResourceType;

/// A parsed ARN. Keeps the original text so that printing it back is exact.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arn {
    text: String,
    /// Byte offsets of the five `:` separators, so the parts are slices without copies.
    separators: [usize; 5],
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
    /// The account is present but is not 12 digits (or `aws` for AWS-managed resources).
    #[error("'{0}' is not an ARN: the account id must be 12 digits")]
    BadAccount(String),
}

impl Arn {
    /// Parses an ARN, accepting every partition (`aws`, `aws-cn`, `aws-us-gov`, ...).
    pub fn parse(text: &str) -> Result<Arn, ArnError> {
        let text = text.trim();
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
        let arn = Arn {
            text: text.to_string(),
            separators,
        };
        for (part, value) in [
            ("partition", arn.partition()),
            ("service", arn.service()),
            ("resource", arn.resource()),
        ] {
            if value.is_empty() {
                return Err(ArnError::EmptyPart {
                    input: text.to_string(),
                    part,
                });
            }
        }
        let account = arn.account_id();
        let account_ok = account.is_empty()
            || account == "aws"
            || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()));
        if !account_ok {
            return Err(ArnError::BadAccount(text.to_string()));
        }
        Ok(arn)
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

    /// The account id; empty for S3 buckets.
    pub fn account_id(&self) -> &str {
        self.part(4)
    }

    /// Everything after the fifth `:`.
    pub fn resource(&self) -> &str {
        &self.text[self.separators[4] + 1..]
    }

    /// Splits the resource part into its type and id at the first `/` or `:`.
    /// Returns `None` for the type when the resource has neither (`arn:aws:s3:::bucket`).
    fn split_resource(&self) -> (Option<&str>, &str) {
        let resource = self.resource();
        match resource.find(['/', ':']) {
            Some(i) => (Some(&resource[..i]), &resource[i + 1..]),
            None => (None, resource),
        }
    }

    /// The resource type as `service:type`, e.g. `ec2:instance`, `rds:db`, `s3:bucket`.
    pub fn resource_type(&self) -> ResourceType {
        let service = self.service();
        match self.split_resource() {
            (Some(kind), _) if service == "s3" && kind != "accesspoint" && kind != "job" => {
                // `arn:aws:s3:::bucket/key` is an object inside the bucket named before the `/`.
                ResourceType::other("s3:object")
            }
            (Some(kind), _) => ResourceType::from_parts(service, kind),
            (None, _) => ResourceType::from_parts(service, default_kind(service)),
        }
    }

    /// The resource id: for `instance/i-1` it is `i-1`; for `service/cluster/web` it is
    /// `cluster/web`; for a bucket it is the bucket name; for a Lambda function with a
    /// version or alias (`function:f:prod`) it is the function name.
    pub fn resource_id(&self) -> &str {
        match self.split_resource() {
            (Some("function"), id) if self.service() == "lambda" => {
                id.split(':').next().unwrap_or(id)
            }
            (Some(_), id) if self.service() == "s3" => {
                self.resource().split('/').next().unwrap_or(id)
            }
            (_, id) => id,
        }
    }
}

/// The type of a resource whose ARN has no type prefix, by service convention.
fn default_kind(service: &str) -> &str {
    match service {
        "s3" => "bucket",
        "sns" => "topic",
        "sqs" => "queue",
        "states" => "statemachine",
        other => other,
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
                ("s3", "", "", "s3:object", "my-bucket"),
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
                    "/aws/lambda/x:*",
                ),
            ),
            (
                "arn:aws:iam::123456789012:role/admin",
                ("iam", "", "123456789012", "iam:role", "admin"),
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
    fn rejects_malformed_arns_quoting_the_input() {
        for bad in [
            "",
            "i-0abc",
            "arn:aws:ec2",
            "arn::ec2:us-east-1:123456789012:instance/i-1",
            "arn:aws::us-east-1:123456789012:instance/i-1",
            "arn:aws:ec2:us-east-1:123456789012:",
            "arn:aws:ec2:us-east-1:12345:instance/i-1",
        ] {
            let err = Arn::parse(bad).expect_err(bad);
            assert!(
                err.to_string().contains(&format!("'{}'", bad.trim())),
                "{err}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        let text = "arn:aws:ecs:us-east-1:123456789012:service/c/web";
        assert_eq!(Arn::parse(text).unwrap().to_string(), text);
    }
}
