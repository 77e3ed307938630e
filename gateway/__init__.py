"""The HTTP/JSON gateway: verifies bearer tokens and turns client requests into gRPC calls.

It owns no state. Routes convert JSON <-> protobuf and nothing else; the services keep the rules.
"""
