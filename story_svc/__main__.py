from mesh.entrypoint import run_service
from story_svc.app import story_host
from story_svc.settings import StorySettings

if __name__ == "__main__":
    run_service(
        "story_svc",
        "24-hour stories, the story tray and who viewed each story (gRPC), with the expiry sweeper.",
        StorySettings,
        story_host,
    )
