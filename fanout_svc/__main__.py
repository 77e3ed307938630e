from fanout_svc.app import fanout_host
from fanout_svc.settings import FanoutSettings
from mesh.entrypoint import run_service

if __name__ == "__main__":
    run_service(
        "fanout_svc", "Hybrid fan-out: keeps Redis inboxes and outboxes (health only).", FanoutSettings, fanout_host
    )
