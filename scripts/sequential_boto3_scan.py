#!/usr/bin/env python3
"""A sequential boto3 scanner of the AWS scan benchmark's estate: the baseline that
scripts/bench_aws_moto.sh times next to `tagguard scan --source aws` (docs/BENCHMARKS.md).

It reads the tags of the same five resource types, the way a user would write it without any
concurrency: one client per service and region, one call at a time, bulk calls where AWS has
them. Per region: EC2 `DescribeInstances` (1,000 per page, tags from the answer, terminated
instances skipped), RDS `DescribeDBInstances` (100 per page, `TagList`), Lambda `ListFunctions`
with the tags from the tagging API's `GetResources` by ARN list (100 ARNs per call, following
`PaginationToken`), ECS `ListClusters`, `ListServices` (100 per page) and `DescribeServices`
(10 per call, `include=['TAGS']`). S3 once per account: `ListBuckets`, `GetBucketLocation` for
each bucket whose `BucketRegion` the answer lacks, and tags by `GetResources` with ARN lists in
each bucket region (only buckets of the regions asked for are kept). Resources never tagged are
absent from `GetResources` answers and count as untagged. No policy is evaluated.

Prints one JSON line: {"resources": N, "per_type": {...}, "untagged": {...}, "calls": {...},
"wall_seconds": x}; calls are HTTP requests (retries included) named as tagguard names them,
and wall_seconds runs from the first client's creation to the last answer.
Usage: .venv/bin/python scripts/sequential_boto3_scan.py ENDPOINT REGION [REGION ...]
"""
import json
import os
import sys
import time
from collections import Counter

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

import boto3  # noqa: E402

# Service prefixes of the call counts, as tagguard's `api_calls` names them.
PREFIX = {"resourcegroupstaggingapi": "tag"}
ARNS_PER_CALL = 100


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__.rsplit("Usage: ", 1)[1].strip())
    endpoint, regions = sys.argv[1], sys.argv[2:]
    calls = Counter()
    per_type = Counter()
    untagged = Counter()
    tags = {}  # ARN -> {key: value}, what a scanner would go on to check

    start = time.perf_counter()
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    clients = {}

    def client(service, region):
        if (service, region) not in clients:
            c = session.client(service, region_name=region, endpoint_url=endpoint)
            name = f"{PREFIX.get(service, service)}:"
            # One count per HTTP request (each attempt of a retried call is a request).
            c.meta.events.register(
                "request-created", lambda operation_name, name=name, **_: calls.update([name + operation_name])
            )
            clients[service, region] = c
        return clients[service, region]

    def record(kind, arn, pairs, key="Key", value="Value"):
        per_type[kind] += 1
        tags[arn] = {p[key]: p[value] for p in pairs or []}
        untagged[kind] += not tags[arn]

    def tags_by_arn(region, arns):
        """Tags of `arns` in `region` by the tagging API, 100 ARNs per call."""
        found = {}
        paginator = client("resourcegroupstaggingapi", region).get_paginator("get_resources")
        for i in range(0, len(arns), ARNS_PER_CALL):
            for page in paginator.paginate(ResourceARNList=arns[i:i + ARNS_PER_CALL]):
                for mapping in page["ResourceTagMappingList"]:
                    found[mapping["ResourceARN"]] = mapping.get("Tags", [])
        return found

    for region in regions:
        ec2 = client("ec2", region)
        account = None
        for page in ec2.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 1000}):
            for reservation in page["Reservations"]:
                account = reservation.get("OwnerId", account)
                for instance in reservation["Instances"]:
                    if instance.get("State", {}).get("Name") == "terminated":
                        continue
                    arn = f"arn:aws:ec2:{region}:{account}:instance/{instance['InstanceId']}"
                    record("ec2:instance", arn, instance.get("Tags"))

        rds = client("rds", region)
        for page in rds.get_paginator("describe_db_instances").paginate(PaginationConfig={"PageSize": 100}):
            for db in page["DBInstances"]:
                record("rds:db", db["DBInstanceArn"], db.get("TagList"))

        lam = client("lambda", region)
        arns = [f["FunctionArn"] for page in lam.get_paginator("list_functions").paginate() for f in page["Functions"]]
        found = tags_by_arn(region, arns)
        for arn in arns:
            record("lambda:function", arn, found.get(arn))

        ecs = client("ecs", region)
        for page in ecs.get_paginator("list_clusters").paginate():
            for cluster in page["clusterArns"]:
                services = [
                    arn
                    for services_page in ecs.get_paginator("list_services").paginate(
                        cluster=cluster, PaginationConfig={"PageSize": 100}
                    )
                    for arn in services_page["serviceArns"]
                ]
                for i in range(0, len(services), 10):
                    described = ecs.describe_services(cluster=cluster, services=services[i:i + 10], include=["TAGS"])
                    for service in described["services"]:
                        record("ecs:service", service["serviceArn"], service.get("tags"), "key", "value")

    # S3 once per account: buckets are global, each lives in one region.
    s3 = client("s3", regions[0])
    by_region = {}
    for page in s3.get_paginator("list_buckets").paginate(PaginationConfig={"PageSize": 1000}):
        for bucket in page.get("Buckets", []):
            region = bucket.get("BucketRegion")
            if not region:
                constraint = s3.get_bucket_location(Bucket=bucket["Name"]).get("LocationConstraint")
                region = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(constraint, constraint)
            by_region.setdefault(region, []).append(f"arn:aws:s3:::{bucket['Name']}")
    for region in regions:
        arns = by_region.get(region, [])
        found = tags_by_arn(region, arns)
        for arn in arns:
            record("s3:bucket", arn, found.get(arn))
    wall = time.perf_counter() - start

    print(json.dumps({
        "resources": sum(per_type.values()),
        "per_type": dict(sorted(per_type.items())),
        "untagged": dict(sorted(untagged.items())),
        "calls": dict(sorted(calls.items())),
        "wall_seconds": round(wall, 3),
    }))


if __name__ == "__main__":
    main()
