from engagement_svc.app import engagement_host
from engagement_svc.settings import EngagementSettings
from mesh.entrypoint import run_service

if __name__ == "__main__":
    run_service(
        "engagement_svc",
        "Likes, comments and replies, saved posts and their exact counts (gRPC).",
        EngagementSettings,
        engagement_host,
    )
