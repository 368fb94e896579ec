"""One gRPC call from grpcio (an independent gRPC implementation) over TLS, optionally with a
client certificate (mTLS) and an API key. Messages travel as serialized protobuf in hex, made and
read by the Rust test, so no generated Python code is needed.

stdin: {"target", "server_name", "ca", "method", "request_hex", "key"?, "cert"?, "cert_key"?}
stdout: {"code": "OK" | status code name, "response_hex"?, "details"?}
"""

import json
import sys

import grpc


def main():
    args = json.load(sys.stdin)

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(args["ca"]),
        private_key=read(args["cert_key"]) if args.get("cert_key") else None,
        certificate_chain=read(args["cert"]) if args.get("cert") else None,
    )
    options = [("grpc.ssl_target_name_override", args["server_name"])]
    metadata = [("authorization", "Bearer " + args["key"])] if args.get("key") else None
    with grpc.secure_channel(args["target"], credentials, options=options) as channel:
        call = channel.unary_unary(
            "/hooknorm.v1.NormalizerService/" + args["method"],
            request_serializer=None,
            response_deserializer=None,
        )
        try:
            response = call(bytes.fromhex(args["request_hex"]), metadata=metadata, timeout=20)
            answer = {"code": "OK", "response_hex": response.hex()}
        except grpc.RpcError as error:
            answer = {"code": error.code().name, "details": error.details()}
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
