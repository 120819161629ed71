//! Cost Explorer's service names and tagguard's resource types: which billing service a
//! resource's spend is billed under, and which resource type a service's spend belongs to.
//!
//! Billing names services by display name (`Amazon Elastic Compute Cloud - Compute`), not by
//! code. Only services whose spend is mostly one resource type are mapped; the rest (`EC2 -
//! Other`: volumes, snapshots, NAT gateways and data transfer together; `Tax`; support) fall
//! in an explicit `other` row rather than being guessed.

use crate::domain::ResourceType;

/// Billing service names and the resource type whose spend they are.
pub const SERVICE_TYPES: [(&str, &str); 9] = [
    ("Amazon Elastic Compute Cloud - Compute", "ec2:instance"),
    ("Amazon Relational Database Service", "rds:db"),
    ("Amazon Simple Storage Service", "s3:bucket"),
    ("AWS Lambda", "lambda:function"),
    ("Amazon Elastic Container Service", "ecs:service"),
    ("Amazon DynamoDB", "dynamodb:table"),
    ("Amazon ElastiCache", "elasticache:cluster"),
    ("Amazon Simple Queue Service", "sqs:queue"),
    ("Amazon Simple Notification Service", "sns:topic"),
];

/// The resource type whose spend billing's `service` is, when one is.
pub fn resource_type_of_service(service: &str) -> Option<&'static str> {
    SERVICE_TYPES
        .iter()
        .find(|(name, _)| *name == service)
        .map(|(_, resource_type)| *resource_type)
}

/// The billing service a resource of `resource_type` is billed under, when known.
pub fn service_of_resource_type(resource_type: &ResourceType) -> Option<&'static str> {
    let wanted = resource_type.to_string();
    SERVICE_TYPES
        .iter()
        .find(|(_, t)| *t == wanted)
        .map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_and_types_map_both_ways() {
        for (service, resource_type) in SERVICE_TYPES {
            let parsed: ResourceType = resource_type.parse().unwrap();
            assert_eq!(parsed.to_string(), resource_type);
            assert_eq!(service_of_resource_type(&parsed), Some(service));
            assert_eq!(resource_type_of_service(service), Some(resource_type));
        }
        assert_eq!(resource_type_of_service("EC2 - Other"), None);
        assert_eq!(resource_type_of_service("Tax"), None);
    }
}
