from export_svc.app import export_host
from export_svc.settings import ExportSettings
from mesh.entrypoint import run_service

if __name__ == "__main__":
    run_service(
        "export_svc",
        "Data exports (gRPC): requests, the background builder of each zip, the expiry sweeper and erasure.",
        ExportSettings,
        export_host,
    )
