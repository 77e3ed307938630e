from media_svc.app import media_host
from media_svc.settings import MediaSettings
from mesh.entrypoint import run_service

if __name__ == "__main__":
    run_service("media_svc", "Upload grants, media records and rendition URLs (gRPC).", MediaSettings, media_host)
