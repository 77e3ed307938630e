from graph_svc.app import graph_host
from graph_svc.settings import GraphSettings
from mesh.entrypoint import run_service

if __name__ == "__main__":
    run_service("graph_svc", "Accounts, credentials and the follow graph (gRPC).", GraphSettings, graph_host)
