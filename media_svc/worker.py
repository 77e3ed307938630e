from media_svc.app import worker_host
from media_svc.settings import MediaSettings
from mesh.entrypoint import run_service

if __name__ == "__main__":
    run_service("media_svc.worker", "Rendition worker: posts.created -> WebP renditions.", MediaSettings, worker_host)
