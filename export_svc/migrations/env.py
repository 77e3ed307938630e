from export_svc.models import metadata
from mesh.migrate import run_migrations

run_migrations(metadata)
