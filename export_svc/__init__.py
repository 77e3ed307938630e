"""export_svc: data exports (the right to portability): a zip of a user's data and original photos,
built in the background and downloaded from object storage."""
