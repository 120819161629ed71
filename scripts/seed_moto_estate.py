#!/usr/bin/env python3
"""Seeds a moto server with an estate for the AWS scan benchmark (docs/BENCHMARKS.md).

Creates PER_TYPE resources of each of the five types tagguard lists natively (EC2 instances,
RDS DB instances, S3 buckets, Lambda functions, ECS services) in each region, with a mix of
compliant, incomplete, invalid and untagged tag sets, using 8 parallel clients.
Usage: seed_moto_estate.py ENDPOINT PER_TYPE REGION [REGION ...]
"""
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3

ENDPOINT, PER_TYPE, REGIONS = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
KEYS = dict(endpoint_url=ENDPOINT, aws_access_key_id="testing", aws_secret_access_key="testing")

TAG_SETS = [
    {"CostCenter": "Engineering", "Owner": "team@example.com", "Environment": "production", "Application": "checkout"},
    {"CostCenter": "Sales"},
    {"CostCenter": "Engineering", "Owner": "not-an-email", "Environment": "prod", "Application": "Checkout App"},
    {"costcenter": "engineering", "Owner": "ops@example.com", "Environment": "Production", "Application": "billing"},
    {},
]


def pairs(tags, key="Key", value="Value"):
    return [{key: k, value: v} for k, v in tags.items()]


def client(service, region):
    return boto3.client(service, region_name=region, **KEYS)


def seed_region(region):
    jobs = []
    ec2, rds, s3, lam, ecs, iam = (client(s, region) for s in ("ec2", "rds", "s3", "lambda", "ecs", "iam"))
    role = iam.create_role(
        RoleName=f"bench-lambda-{region}",
        AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}',
    )["Role"]["Arn"]
    ecs.create_cluster(clusterName="bench")
    for i in range(PER_TYPE):
        tags = TAG_SETS[i % len(TAG_SETS)]

        def instance(tags=tags):
            spec = [{"ResourceType": "instance", "Tags": pairs(tags)}] if tags else []
            ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, TagSpecifications=spec)

        def database(i=i, tags=tags):
            rds.create_db_instance(
                DBInstanceIdentifier=f"bench-{region}-{i}", DBInstanceClass="db.t3.micro", Engine="postgres",
                MasterUsername="admin", MasterUserPassword="password123", AllocatedStorage=20, Tags=pairs(tags),
            )

        def bucket(i=i, tags=tags):
            name = f"bench-{region}-{i}"
            if region == "us-east-1":
                s3.create_bucket(Bucket=name)
            else:
                s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
            if tags:
                s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": pairs(tags)})

        def function(i=i, tags=tags):
            lam.create_function(
                FunctionName=f"bench-{i}", Runtime="python3.12", Role=role, Handler="app.handler",
                Code={"ZipFile": b"not a zip"}, Tags=tags,
            )

        def service(i=i, tags=tags):
            ecs.create_service(cluster="bench", serviceName=f"svc-{i}", desiredCount=0,
                               tags=pairs(tags, "key", "value"))

        jobs += [instance, database, bucket, function, service]
    return jobs


with ThreadPoolExecutor(8) as pool:
    jobs = [job for region in REGIONS for job in seed_region(region)]
    for future in [pool.submit(job) for job in jobs]:
        future.result()
print(f"seeded {len(jobs)} resources in {len(REGIONS)} regions")
