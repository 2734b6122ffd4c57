"""A real S3-compatible server for tests: moto's server mode in a child process.

    with S3Server() as s3:
        s3.create_bucket("usage")
        ...  # irisgate's `exporters.s3.endpoint` = s3.url

`stop()` and `start()` again (same port, reserved for the whole test process: moto cannot
report a port it picked itself) simulate an S3 outage. moto keeps everything in
memory, so a restarted server is empty: create the bucket again. `reset()` empties a running
server the same way without a restart (one server for a test module, emptied per test).
Needs `moto[server]` and `boto3` (both in irisgate's `test` extra).
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from irisgate.testing.lifecycle import StartStop
from irisgate.testing.ports import reserve_port

REGION = "us-east-1"
ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"


class S3Server(StartStop):
    def __init__(self, port: int | None = None) -> None:
        self.port = port or reserve_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> S3Server:
        args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=1):
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto server did not answer within {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def reset(self) -> S3Server:
        """Forget every bucket and object (moto's `POST /moto-api/reset`); start the server
        again if a test left it stopped."""
        if self.process is None or self.process.poll() is not None:
            return self.start()
        request = urllib.request.Request(self.url + "/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            return self

    def client(self) -> Any:
        """A boto3 S3 client for this server."""
        import boto3

        return boto3.client(
            "s3",
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object in `bucket` under `prefix`: key -> content."""
        client = self.client()
        found: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                found[item["Key"]] = body
        return found
