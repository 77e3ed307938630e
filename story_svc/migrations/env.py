from mesh.migrate import run_migrations
from story_svc.models import metadata

run_migrations(metadata)
