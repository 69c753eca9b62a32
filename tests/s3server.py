"""A real S3-compatible server for the tests: moto's, on 127.0.0.1 at a random port, with signature checks on.

The server runs in the test process. It authenticates every request after the first three (which make an IAM user
with an access key), so a wrong secret is refused as a real S3 would refuse it. Jobs reach it only through the
standard AWS variables in `env`.
"""

from __future__ import annotations

import json
import uuid

REGION = "us-east-1"


class S3Server:
    def __init__(self):
        from moto import settings
        from moto.server import ThreadedMotoServer

        settings.INITIAL_NO_AUTH_ACTION_COUNT = 3  # the IAM calls below; every later request must be signed
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.access_key, self.secret = self._make_user()
        self.env = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                    "AWS_SECRET_ACCESS_KEY": self.secret, "AWS_DEFAULT_REGION": REGION}

    def _make_user(self) -> tuple[str, str]:
        import boto3

        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id="bootstrap",
                           aws_secret_access_key="bootstrap")
        iam.create_user(UserName="colorspark")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="colorspark", PolicyName="all", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="colorspark")["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    @property
    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret)

    def new_bucket(self, prefix: str = "cs") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.client.create_bucket(Bucket=name)
        return name

    def upload_tree(self, folder, bucket: str, prefix: str) -> None:
        client = self.client
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            client.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(folder).as_posix()}",
                              Body=path.read_bytes())

    def names(self, bucket: str, prefix: str = "") -> list[str]:
        """The keys under `prefix`, without reading the objects."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def keys(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under `prefix` (relative key -> bytes), without the empty "folder/" markers that Arrow's S3
        filesystem leaves so that an emptied folder still lists."""
        client = self.client
        found = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["Key"].endswith("/"):
                    continue
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                found[item["Key"][len(prefix):].lstrip("/")] = body
        return found

    def stop(self) -> None:
        self._server.stop()
