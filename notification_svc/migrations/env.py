from mesh.migrate import run_migrations
from notification_svc.models import metadata

run_migrations(metadata)
