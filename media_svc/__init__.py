"""media_svc: upload grants, media records and the rendition worker."""
