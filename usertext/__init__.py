"""Text that people type, read the same way by every service: usernames, @mentions and #hashtags.

graph_svc owns the username rules (graph_svc/credentials.py `normalize_username` registers and
stores names); this library restates them so that post_svc and engagement_svc can find @mentions in
captions and comments without calling graph_svc for every word. tests/usertext checks that the two
agree name for name, so a change to graph_svc's rules fails there until it is made here too.

A shared library: it imports no service and not the gateway (import-linter checks it).
"""

from __future__ import annotations

import re
import unicodedata

USERNAME_MIN, USERNAME_MAX = 3, 30
MENTIONS_MAX = 20
# Characters of one hashtag, counted after normalisation.
HASHTAG_MAX = 100

# graph_svc's rule: after trimming and lower-casing, 3-30 characters of a-z, 0-9, '.' and '_',
# neither starting nor ending with '.' and without "..".
_USERNAME = re.compile(r"[a-z0-9._]{3,30}")
# '@' then a run of word characters and dots, not glued to a word, an address or another mention
# ("ada@example.com" and "@@ada" mention nobody). Word characters of any script are taken into the
# run so that "@josé" is one (invalid) name rather than a mention of "jos".
_MENTION = re.compile(r"(?<![\w@.])@([\w.]+)")


def normalize_username(raw: str) -> str | None:
    """The username as graph_svc stores it (trimmed, lower-cased), or None if graph_svc would refuse
    `raw` as a username."""
    username = raw.strip().lower()
    if not _USERNAME.fullmatch(username):
        return None
    if username.startswith(".") or username.endswith(".") or ".." in username:
        return None
    return username


def parse_mentions(text: str) -> list[str]:
    """The usernames @mentioned in `text`, normalised, each once, in order of first appearance, at most
    MENTIONS_MAX (later ones are ignored). Whether each user exists is for graph_svc to say.

    A sentence's full stop is not part of the name ("thanks @ada." mentions "ada"); a token that is
    not a possible username after that ("@a", "@josé", "@ada..b") mentions nobody.
    """
    found: dict[str, None] = {}
    for match in _MENTION.finditer(text):
        username = normalize_username(match.group(1).rstrip("."))
        if username is not None:
            found[username] = None
            if len(found) == MENTIONS_MAX:
                break
    return list(found)


def normalize_hashtag(raw: str) -> str | None:
    """The one spelling of a hashtag (without '#'), used when parsing captions, naming tag pages and
    searching: Unicode NFKC, then case folding, then NFKC again (case folding can undo it; this is
    Unicode's NFKC_Casefold), so "Café", a decomposed "cafe\u0301", "CAFÉ" and its full-width form
    are one tag. None if the result is empty, longer than HASHTAG_MAX, or holds anything but letters,
    digits, '_' and combining marks."""
    tag = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw).casefold())
    if not tag or len(tag) > HASHTAG_MAX or not all(_in_tag(ch) for ch in tag):
        return None
    return tag


def parse_hashtags(text: str) -> list[str]:
    """The hashtags of `text`, normalised (normalize_hashtag), each once, in order of first appearance.

    A tag is '#' then a run of letters, digits, '_' and combining marks of any script (so the vowel
    signs of Devanagari or Tamil, and a decomposed accent, stay in the tag: "#हिन्दी" is "हिन्दी", not
    "ह"), not glued to a preceding word ("a#b" is no tag). A run longer than HASHTAG_MAX is no tag.
    """
    text = unicodedata.normalize("NFKC", text)
    found: dict[str, None] = {}
    start = text.find("#")
    while start != -1:
        end = start + 1
        while end < len(text) and _in_tag(text[end]):
            end += 1
        glued = start > 0 and _in_tag(text[start - 1])
        if end > start + 1 and not glued and (tag := normalize_hashtag(text[start + 1 : end])) is not None:
            found[tag] = None
        start = text.find("#", end)
    return list(found)


def _in_tag(ch: str) -> bool:
    return ch.isalnum() or ch == "_" or unicodedata.category(ch).startswith("M")
