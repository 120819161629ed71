#!/usr/bin/env python3
"""What Cloud Custodian itself says of the resources tagguard exports to, for tagguard's tests.

    python tests/custodian_table.py ROWS.json

ROWS.json is a list of {"resource": "ec2", "arn_expression": "..."} (tagguard's table). For
each row this prints, as one JSON list on standard output, what Custodian's own metadata and
code give: whether `aws.<resource>` exists, its CloudFormation type, its id field and ARN
field, and for two resources (one with the id `ID-1`, one whose id is itself an ARN, as
Custodian's resources identified by their ARN have) the ARN Custodian's own `get_arns` computes
(account 123456789012, us-east-1, partition aws) and the ARN tagguard's expression gives once
Custodian's variables are expanded. The test decides what must agree.

Runs with the Python that has c7n installed (scripts/test.sh puts it in .venv).
"""

import json
import sys

import jmespath
from c7n.config import Config
from c7n.policy import Policy
from c7n.provider import clouds
from c7n.resources import load_resources

ACCOUNT = "123456789012"
REGION = "us-east-1"


def main():
    rows = json.load(open(sys.argv[1]))
    load_resources(("aws.*",))
    registry = clouds["aws"].resources
    out = []
    for row in rows:
        name = row["resource"]
        klass = registry.get(name)
        if klass is None:
            out.append({"resource": name, "exists": False})
            continue
        meta = klass.resource_type
        arn_field = getattr(meta, "arn", None) or None
        options = Config.empty(region=REGION, account_id=ACCOUNT)
        policy = Policy({"name": "probe", "resource": "aws." + name}, options)
        expression = row["arn_expression"].format(
            partition="aws", region=REGION, account_id=ACCOUNT
        )
        pairs = []
        for ident in ("ID-1", f"arn:aws:probe:{REGION}:{ACCOUNT}:thing/ID-1"):
            resource = {meta.id: ident}
            if arn_field and arn_field != meta.id:
                resource[arn_field] = f"arn:aws:probe:{REGION}:{ACCOUNT}:field/{ident}"
            expected = policy.resource_manager.get_arns([dict(resource)])[0]
            pairs.append({"custodian": expected, "tagguard": jmespath.search(expression, resource)})
        out.append({
            "resource": name,
            "exists": True,
            "cfn_type": getattr(meta, "cfn_type", None),
            "id_field": meta.id,
            "arn_field": arn_field,
            "arns": pairs,
        })
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
