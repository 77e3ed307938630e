"""The ports `dev/ensure-services.sh` keeps out of the kernel's ephemeral range cover every port a
process of `make run` listens on by default. Ports 50051-50060 lie inside Linux's ephemeral range
(32768-60999): unreserved, an outgoing connection can take one as its source port just before the
service binds it, and the service stops with "Address already in use" (export_svc's 50060, left out
of the list when export_svc was added, did exactly that to a newcomer's `make run`)."""

from __future__ import annotations

import re
from pathlib import Path

from engagement_svc.settings import EngagementSettings
from export_svc.settings import ExportSettings
from fanout_svc.settings import FanoutSettings
from feed_svc.settings import FeedSettings
from gateway.settings import GatewaySettings
from graph_svc.settings import GraphSettings
from media_svc.settings import MediaSettings
from mesh.config import MeshSettings
from notification_svc.settings import NotificationSettings
from post_svc.settings import PostSettings
from story_svc.settings import StorySettings

SCRIPT = Path(__file__).resolve().parents[1] / "dev" / "ensure-services.sh"
SETTINGS = [
    EngagementSettings,
    ExportSettings,
    FanoutSettings,
    FeedSettings,
    GatewaySettings,
    GraphSettings,
    MediaSettings,
    NotificationSettings,
    PostSettings,
    StorySettings,
]


def reserved_ports() -> set[int]:
    """The ports of the script's RESERVED_PORTS (its S3 port at the default, 9000)."""
    line = re.search(r'^RESERVED_PORTS="([^"]+)"$', SCRIPT.read_text(), re.MULTILINE)
    assert line, "dev/ensure-services.sh sets RESERVED_PORTS"
    ports: set[int] = set()
    for part in line.group(1).replace("$S3_PORT", "9000").split(","):
        low, _, high = part.partition("-")
        ports.update(range(int(low), int(high or low) + 1))
    return ports


def default_ports() -> dict[str, int]:
    """Every port a settings class listens on by default: its `*listen` addresses, `http_port`, and
    the peers' addresses every process is configured with (MeshSettings' `*_addr`)."""
    ports: dict[str, int] = {}
    for settings in [MeshSettings, *SETTINGS]:
        for name, field in settings.model_fields.items():
            value = field.default
            if name.endswith(("listen", "_addr")) and isinstance(value, str):
                ports[f"{settings.__name__}.{name}"] = int(value.rsplit(":", 1)[1])
            elif name == "http_port":
                ports[f"{settings.__name__}.{name}"] = value
    return ports


def test_every_default_listening_port_is_reserved() -> None:
    ports = default_ports()
    assert {"ExportSettings.listen", "MediaSettings.worker_listen", "GatewaySettings.http_port"} <= ports.keys()
    missing = {name: port for name, port in ports.items() if port not in reserved_ports()}
    assert not missing, f"add these ports to RESERVED_PORTS in dev/ensure-services.sh: {missing}"
