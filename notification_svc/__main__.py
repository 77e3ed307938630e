from mesh.entrypoint import run_service
from notification_svc.app import notification_host
from notification_svc.settings import NotificationSettings

if __name__ == "__main__":
    run_service(
        "notification_svc",
        "Each user's notifications: grouped, durable, with read markers, settings and real-time streams (gRPC).",
        NotificationSettings,
        notification_host,
    )
