"""Run a moto server (S3 and SageMaker) on 127.0.0.1 for airlock's tests and benches.

Usage: python tests/moto_server.py [--port N]

Prints one line, `MOTO_PORT <port>`, once the server accepts connections (port 0, the
default, asks the kernel for a free one), then serves until its standard input closes: the
test that started it holds the pipe, so the server stops when the test does, even when the
test is killed.

Two patches, applied only to the moto version they were written against (another version
fails loudly rather than run with a patch that may no longer fit):
- moto 5.2.5 lacks SageMaker's UpdateEndpoint: it is registered on moto's own backend. Like
  the real service, an endpoint being created or updated reports Creating or Updating to
  the first DescribeEndpoint calls before InService (moto creates endpoints InService).
- moto 5.2.5 answers S3 ListParts with a <ListPartsResponse> root where S3 sends
  <ListPartsResult>; boto3 does not mind, the Rust SDK (rightly) refuses it. The root is
  renamed.
"""

import argparse
import os
import sys
import threading

import moto
from werkzeug.serving import make_server

EXPECTED_MOTO = "5.2.5"


def register_update_endpoint() -> None:
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import FakeEndpoint, SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse
    from moto.core.utils import utcnow

    if moto.__version__ != EXPECTED_MOTO:
        sys.exit(
            f"tests/moto_server.py patches moto {EXPECTED_MOTO}, found {moto.__version__}: "
            "check whether UpdateEndpoint is still missing and update the patch"
        )
    if hasattr(SageMakerModelBackend, "update_endpoint"):
        sys.exit("moto now implements UpdateEndpoint: remove the patch in tests/moto_server.py")

    def update_endpoint(self, endpoint_name: str, endpoint_config_name: str) -> FakeEndpoint:
        endpoint = self.endpoints.get(endpoint_name)
        if endpoint is None:
            arn = FakeEndpoint.arn_formatter(endpoint_name, self.account_id, self.region_name)
            raise ValidationError(message=f"Could not find endpoint '{arn}'.")
        if endpoint.endpoint_status != "InService":
            raise ValidationError(
                message=f"Cannot update in-progress endpoint '{endpoint.arn}'."
            )
        config = self.describe_endpoint_config(endpoint_config_name)
        endpoint.endpoint_config_name = endpoint_config_name
        endpoint.production_variants = endpoint._process_production_variants(
            config["ProductionVariants"]
        )
        endpoint.last_modified_time = utcnow()
        # Like the real service: Updating first, InService on a later DescribeEndpoint, so a
        # client that does not wait sees the update still in progress.
        endpoint.endpoint_status = "Updating"
        endpoint._airlock_describes_until_in_service = 2
        return endpoint

    original_create = SageMakerModelBackend.create_endpoint

    def create_endpoint(self, *args, **kwargs):
        # moto creates endpoints InService at once; the real service says Creating first.
        endpoint = original_create(self, *args, **kwargs)
        endpoint.endpoint_status = "Creating"
        endpoint._airlock_describes_until_in_service = 2
        return endpoint

    original_describe = SageMakerModelBackend.describe_endpoint

    def describe_endpoint(self, endpoint_name: str):
        endpoint = self.endpoints.get(endpoint_name)
        if endpoint is not None and endpoint.endpoint_status in ("Creating", "Updating"):
            left = getattr(endpoint, "_airlock_describes_until_in_service", 0) - 1
            endpoint._airlock_describes_until_in_service = left
            if left <= 0:
                endpoint.endpoint_status = "InService"
        return original_describe(self, endpoint_name)

    def update_endpoint_response(self):
        endpoint = self.sagemaker_backend.update_endpoint(
            endpoint_name=self._get_param("EndpointName"),
            endpoint_config_name=self._get_param("EndpointConfigName"),
        )
        from moto.core.responses import ActionResult

        return ActionResult({"EndpointArn": endpoint.arn})

    SageMakerModelBackend.update_endpoint = update_endpoint
    SageMakerModelBackend.describe_endpoint = describe_endpoint
    SageMakerModelBackend.create_endpoint = create_endpoint
    SageMakerResponse.update_endpoint = update_endpoint_response


def fix_list_parts_root() -> None:
    from moto.s3.responses import S3Response

    original = S3Response.list_parts

    def list_parts(self):
        status, headers, body = original(self)
        if isinstance(body, str):
            body = body.replace("ListPartsResponse", "ListPartsResult")
        elif isinstance(body, bytes):
            body = body.replace(b"ListPartsResponse", b"ListPartsResult")
        return status, headers, body

    S3Response.list_parts = list_parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    register_update_endpoint()
    fix_list_parts_root()

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", args.port, app, threaded=True,
                         request_handler=MotoRequestHandler)
    print(f"MOTO_PORT {server.server_port}", flush=True)

    def watch_stdin() -> None:
        # EOF on stdin: the parent is gone. Stop at once, whatever is in flight.
        while sys.stdin.buffer.read(65536):
            pass
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
