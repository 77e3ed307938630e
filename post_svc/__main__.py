from mesh.entrypoint import run_service
from post_svc.app import post_host
from post_svc.settings import PostSettings

if __name__ == "__main__":
    run_service("post_svc", "Posts, the profile grid and post events (gRPC).", PostSettings, post_host)
