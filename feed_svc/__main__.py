from feed_svc.app import feed_host
from feed_svc.settings import FeedSettings
from mesh.entrypoint import run_service

if __name__ == "__main__":
    run_service("feed_svc", "The home feed read path (gRPC).", FeedSettings, feed_host)
