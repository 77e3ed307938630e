"""README.txt, the first file of every export: what each file holds, field by field."""

README = """\
Your Glimpse data export
========================

Everything you put into Glimpse, as machine-readable JSON (UTF-8) and your original photos.
Ids are 64-bit integers written as decimal strings; times are RFC 3339 in UTC; a missing value
is null. Lists are JSON arrays, one object per line.

profile.json     Your account: user_id, username, display_name, bio, website, is_private,
                 follower_count, following_count, create_time (when you joined), avatar_url
                 (your profile picture, or null), and the export_id and export_create_time of
                 this export.
posts.json       Your posts, newest first: post_id, caption, hashtags (as normalised by Glimpse,
                 without '#'), location (name, latitude, longitude, or null), photos (each
                 media_id and its file in media/, or file null if the original is no longer
                 stored), create_time, update_time.
comments.json    Your live comments and replies, oldest first: comment_id, post_id (the post it is
                 on), text, parent_comment_id (the comment a reply belongs to; null for a
                 comment), reply_to_comment_id (what you replied to), create_time.
likes.json       The posts you like, newest first: post_id, like_time.
saves.json       The posts you saved, newest first: post_id, save_time.
followers.json   Who follows you, newest first: user_id, username, display_name, follow_time.
following.json   Whom you follow, newest first: user_id, username, display_name, follow_time.
blocks.json      Whom you block, newest first: user_id, username, display_name, block_time.
mutes.json       Whom you mute, newest first: user_id, username, display_name, mute_time.
stories.json     Your active stories (shared in the last 24 hours), oldest first: story_id, photo
                 (media_id and its file in media/), create_time, expire_time.
media/           Each photo of your posts and stories exactly as you uploaded it (its metadata
                 included), named <media_id>.<extension>.
"""
