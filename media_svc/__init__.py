"""media_svc: upload grants, media records and the rendition worker.

Photo bytes follow the visibility rule: nothing in the bucket is readable without a signature, and
the rendition URLs media_svc hands out are signed, the same for every caller within a 30-minute
slot, and work for at most one hour (two slots, `rendition_url_slot_seconds`). So someone who loses
the right to see a photo, and is therefore handed no new URL, can fetch it for at most one hour with
a URL they kept (media_svc.rendition_urls has the design and its figures).
"""
