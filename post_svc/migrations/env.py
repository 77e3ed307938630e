from mesh.migrate import run_migrations
from post_svc.models import metadata

run_migrations(metadata)
