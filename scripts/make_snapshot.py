#!/usr/bin/env python3
"""Writes a get-resources snapshot of N random resources, for benchmarks of the snapshot source.

Usage: scripts/make_snapshot.py N SEED [--concatenated] > estate.json

Five resource types in two accounts, tags drawn at random (some missing, some invalid), 100
entries a page; a JSON array of pages, or pages one after the other with --concatenated.
"""
import json
import random
import sys


def main():
    n, seed = int(sys.argv[1]), int(sys.argv[2])
    concatenated = "--concatenated" in sys.argv[3:]
    random.seed(seed)
    kinds = [
        ("ec2", "us-east-1", "instance/i-%017x"),
        ("rds", "us-west-2", "db:orders-%d"),
        ("lambda", "eu-west-1", "function:fn-%d"),
        ("ecs", "us-east-1", "service/prod/svc-%d"),
        ("dynamodb", "us-east-1", "table/t-%d"),
    ]
    entries = []
    for i in range(n):
        service, region, resource = random.choice(kinds)
        account = random.choice(["123456789012", "234567890123"])
        tags = []
        if random.random() < 0.7:
            tags.append({"Key": "CostCenter", "Value": random.choice(["Engineering", "Sales", "eng"])})
        if random.random() < 0.7:
            tags.append({"Key": "Owner", "Value": "ana@example.com"})
        if random.random() < 0.5:
            tags.append({"Key": "Environment", "Value": random.choice(["production", "prod"])})
        tags.append({"Key": "Name", "Value": f"res-{i}"})
        entries.append({"ResourceARN": f"arn:aws:{service}:{region}:{account}:" + (resource % i), "Tags": tags})
    pages = [
        {"PaginationToken": "t", "ResourceTagMappingList": entries[k:k + 100]}
        for k in range(0, n, 100)
    ]
    if concatenated:
        for page in pages:
            print(json.dumps(page))
    else:
        print("[" + ",".join(json.dumps(page) for page in pages) + "]")


if __name__ == "__main__":
    main()
