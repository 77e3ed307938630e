"""The one shared runtime of Glimpse: settings, ids, database, Redis, event bus, errors, gRPC bootstrap.

`mesh` never imports a service package; services build on it. Put code used by a single service in
that service's package, not here.
"""
