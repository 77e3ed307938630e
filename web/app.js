// The Glimpse web client: a hash router over views that each call the gateway's API.
// User text is only ever set as textContent (never parsed as HTML).

import { api, ApiError, saveSession, session, signIn, signOut, uploadPhoto } from "./api.js";
import { paint } from "./blurhash.js";
import { openStream } from "./events.js";

const view = document.getElementById("view");
const statusLine = document.getElementById("status");
const unreadBadge = document.getElementById("unread");
const FEED_SIZE = 640;
const FULL_SIZE = 1080;
const THUMB_SIZE = 150;

/** An element: `h("a", {href: "#/"}, "Home")`. Attributes starting with "on" are listeners. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) element.append(child);
  }
  return element;
}

/** "1 follower", "2 followers" (counts arrive as decimal strings or numbers). */
function counted(count, noun) {
  return `${count} ${noun}${String(count) === "1" ? "" : "s"}`;
}

function say(message) {
  statusLine.textContent = message;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => (statusLine.textContent = ""), 4000);
}

function failure(error) {
  return h("p", { class: "error", role: "alert" }, error instanceof ApiError ? error.message : String(error));
}

/** Runs `action` with `button` disabled; a failure is announced, not thrown. */
async function busy(button, action) {
  button.disabled = true;
  try {
    await action();
  } catch (error) {
    say(error instanceof ApiError ? error.message : String(error));
  } finally {
    button.disabled = false;
  }
}

function me() {
  return session()?.user;
}

// ---- photos ----

function rendition(media, size) {
  return media.renditions.find((r) => r.size === size) || media.renditions[0];
}

/** A photo: its blurhash at once, the `size` px rendition faded in over it once loaded. */
function photo(media, size, alt) {
  const ratio = media.width && media.height ? `${media.width} / ${media.height}` : "1";
  const figure = h("figure", { class: "photo", style: `aspect-ratio: ${ratio}` });
  if (media.blurhash) {
    const canvas = h("canvas", { width: 32, height: 32, "aria-hidden": "true" });
    try {
      paint(canvas, media.blurhash);
      figure.append(canvas);
    } catch {
      // A malformed placeholder is not worth an error: the grey background stands in.
    }
  }
  const chosen = media.status === "READY" ? rendition(media, size) : null;
  if (chosen) {
    const img = h("img", { src: chosen.url, alt, width: chosen.width, height: chosen.height, loading: "lazy", decoding: "async" });
    img.addEventListener("load", () => img.classList.add("loaded"));
    figure.append(img);
  } else {
    figure.setAttribute("role", "img");
    figure.setAttribute("aria-label", alt);
    figure.append(h("span", { class: "processing" }, media.status === "FAILED" ? "This photo could not be processed" : "Processing…"));
  }
  return figure;
}

function captionText(text) {
  // Hashtags become links to their pages; the rest stays plain text.
  const paragraph = h("p", { class: "caption" });
  for (const part of text.split(/(#[\p{L}\p{N}_]+)/u)) {
    paragraph.append(part.startsWith("#") ? h("a", { href: `#/t/${encodeURIComponent(part.slice(1))}` }, part) : part);
  }
  return paragraph;
}

function userLink(user) {
  return h("a", { href: `#/u/${encodeURIComponent(user.username)}` }, user.display_name || user.username);
}

/** One post as in the feed: author, photo, like and save, caption, a link to its comments. */
function postCard(post, size = FEED_SIZE) {
  const engagement = post.engagement || { like_count: "0", comment_count: "0", viewer_has_liked: false, viewer_has_saved: false };
  const name = post.author.display_name || post.author.username;
  const alt = post.caption ? `Photo by ${name}: ${post.caption}` : `Photo by ${name}`;
  const likes = h("span", { class: "likes" }, `${engagement.like_count} likes`);
  const like = h("button", { type: "button", class: "like", "aria-pressed": String(engagement.viewer_has_liked) }, "Like");
  like.addEventListener("click", () =>
    busy(like, async () => {
      const liked = like.getAttribute("aria-pressed") === "true";
      const result = await api(liked ? "DELETE" : "POST", `/v1/posts/${post.id}/like`);
      like.setAttribute("aria-pressed", String(result.liked));
      likes.textContent = `${result.like_count} likes`;
    }),
  );
  const save = h("button", { type: "button", class: "save", "aria-pressed": String(engagement.viewer_has_saved) }, "Save");
  save.addEventListener("click", () =>
    busy(save, async () => {
      const saved = save.getAttribute("aria-pressed") === "true";
      const result = await api(saved ? "DELETE" : "POST", `/v1/posts/${post.id}/save`);
      save.setAttribute("aria-pressed", String(result.saved));
      say(result.saved ? "Saved" : "Removed from saved");
    }),
  );
  return h(
    "article",
    { class: "post", "data-post-id": post.id, "aria-label": `Post by ${name}` },
    h("a", { class: "author", href: `#/u/${encodeURIComponent(post.author.username)}` }, name),
    post.media.slice(0, 1).map((media) => h("a", { href: `#/p/${post.id}`, "aria-label": `Open ${alt}` }, photo(media, size, alt))),
    h(
      "div",
      { class: "actions" },
      like,
      likes,
      h("a", { href: `#/p/${post.id}` }, `${engagement.comment_count} comments`),
      save,
    ),
    captionText(post.caption),
  );
}

/** A list that loads `load(pageToken)` pages as its end scrolls into view. */
function pagedList(container, load, render, empty) {
  const sentinel = h("p", { class: "muted" }, "Loading…");
  let token = "";
  let loading = false;
  let count = 0;
  const observer = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && more());
  async function more() {
    if (loading) return;
    loading = true;
    try {
      const page = await load(token);
      for (const item of page.items) container.append(render(item));
      count += page.items.length;
      token = page.next_page_token;
      if (!token) {
        observer.disconnect();
        sentinel.textContent = count ? "You're all caught up." : empty;
      }
    } catch (error) {
      observer.disconnect();
      sentinel.replaceWith(failure(error));
      token = "";
    } finally {
      loading = false;
    }
    // The observer only reports changes: a page too short to push the end out of view loads the next.
    if (token && sentinel.isConnected && sentinel.getBoundingClientRect().top < innerHeight) more();
  }
  // The first page at once (the end may start below the fold, after a large photo); then on scroll.
  more();
  observer.observe(sentinel);
  return sentinel;
}

// ---- views ----

function loginView() {
  const error = h("div");
  const form = h(
    "form",
    { class: "stack", "aria-labelledby": "login-title" },
    h("label", {}, "Username or email", h("input", { type: "text", name: "login", autocomplete: "username", required: true })),
    h("label", {}, "Password", h("input", { type: "password", name: "password", autocomplete: "current-password", required: true })),
    h("button", { type: "submit", class: "primary" }, "Log in"),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.replaceChildren();
    try {
      await signIn(form.login.value.trim(), form.password.value);
      location.hash = "#/";
      started();
    } catch (e) {
      error.replaceChildren(failure(e));
    }
  });
  return [h("h1", { id: "login-title" }, "Log in"), form, h("p", {}, "New here? ", h("a", { href: "#/signup" }, "Create an account"))];
}

function signupView() {
  const error = h("div");
  const form = h(
    "form",
    { class: "stack", "aria-labelledby": "signup-title" },
    h("label", {}, "Username", h("input", { type: "text", name: "username", autocomplete: "username", required: true })),
    h("label", {}, "Email", h("input", { type: "email", name: "email", autocomplete: "email", required: true })),
    h("label", {}, "Display name", h("input", { type: "text", name: "display_name", autocomplete: "name" })),
    h("label", {}, "Password", h("input", { type: "password", name: "password", autocomplete: "new-password", required: true })),
    h("button", { type: "submit", class: "primary" }, "Sign up"),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.replaceChildren();
    try {
      const username = form.username.value.trim();
      await api("POST", "/v1/users", {
        username,
        email: form.email.value.trim(),
        password: form.password.value,
        display_name: form.display_name.value.trim(),
      });
      await signIn(username, form.password.value);
      location.hash = "#/";
      started();
    } catch (e) {
      error.replaceChildren(failure(e));
    }
  });
  return [h("h1", { id: "signup-title" }, "Create an account"), form, h("p", {}, "Have one? ", h("a", { href: "#/login" }, "Log in"))];
}

async function storyTray() {
  const tray = h("nav", { class: "tray", "aria-label": "Stories" });
  try {
    const { items } = await api("GET", "/v1/stories/tray");
    for (const entry of items) {
      const name = entry.author.display_name || entry.author.username;
      tray.append(
        h("a", { href: `#/s/${entry.author.id}`, class: entry.has_unseen ? "unseen" : "", "aria-label": `${name}'s stories${entry.has_unseen ? ", new" : ""}` }, name),
      );
    }
  } catch {
    // Stories are an extra: the feed is shown without its tray when story_svc does not answer.
  }
  return tray.childElementCount ? tray : null;
}

async function feedView() {
  const list = h("div", { class: "feed" });
  const sentinel = pagedList(
    list,
    (token) => api("GET", `/v1/feed?page_size=10${token ? `&page_token=${encodeURIComponent(token)}` : ""}`),
    (post) => postCard(post),
    "Your feed is empty: follow someone (Search) or share a photo (New post).",
  );
  return [h("h1", { class: "visually-hidden" }, "Home"), await storyTray(), list, sentinel];
}

function newPostView() {
  const error = h("div");
  const progress = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Upload progress" });
  const preview = h("img", { alt: "", hidden: true, style: "max-width: 100%; border-radius: 8px" });
  const form = h(
    "form",
    { class: "stack", "aria-labelledby": "new-title" },
    h("label", {}, "Photo", h("input", { type: "file", name: "photo", accept: "image/jpeg,image/png,image/webp,image/heic,image/heif,image/avif", required: true })),
    preview,
    h("label", {}, "Caption", h("textarea", { name: "caption", rows: 3, maxlength: 2200 })),
    progress,
    h("button", { type: "submit", class: "primary" }, "Share"),
    error,
  );
  // One key per chosen photo and caption: a retry after a network error cannot post twice.
  let idempotencyKey = crypto.randomUUID();
  form.photo.addEventListener("change", () => {
    idempotencyKey = crypto.randomUUID();
    const file = form.photo.files[0];
    preview.hidden = !file;
    if (file) preview.src = URL.createObjectURL(file);
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.photo.files[0];
    const button = form.querySelector("button[type=submit]");
    error.replaceChildren();
    button.disabled = true;
    progress.hidden = false;
    try {
      const mediaId = await uploadPhoto(file, (fraction) => (progress.value = fraction));
      const post = await api("POST", "/v1/posts", { caption: form.caption.value, media_ids: [mediaId] }, { "idempotency-key": idempotencyKey });
      say("Shared. Your followers will see it in their feeds.");
      location.hash = `#/p/${post.id}`;
    } catch (e) {
      error.replaceChildren(failure(e));
    } finally {
      button.disabled = false;
    }
  });
  return [h("h1", { id: "new-title" }, "New post"), form];
}

function comment(item, postId, onReply) {
  const author = item.author ? item.author.display_name || item.author.username : "(deleted account)";
  const entry = h("li", { "data-comment-id": item.id }, h("div", {}, h("strong", {}, author), " ", item.text));
  if (!item.parent_comment_id) {
    const replies = h("ul", { class: "plain" });
    const reply = h("button", { type: "button", "aria-label": `Reply to ${author}` }, "Reply");
    reply.addEventListener("click", () => onReply(item, replies));
    entry.append(reply);
    if (Number(item.reply_count) > 0) {
      const show = h("button", { type: "button" }, `View ${item.reply_count} replies`);
      show.addEventListener("click", () =>
        busy(show, async () => {
          const page = await api("GET", `/v1/comments/${item.id}/replies?page_size=50`);
          replies.replaceChildren(...page.items.map((r) => comment(r, postId, onReply)));
          show.remove();
        }),
      );
      entry.append(show);
    }
    entry.append(replies);
  }
  return entry;
}

async function postView(postId) {
  const post = await api("GET", `/v1/posts/${encodeURIComponent(postId)}`);
  const list = h("ul", { class: "plain" });
  const input = h("input", { type: "text", name: "text", required: true, maxlength: 2200 });
  const label = h("label", {}, "Add a comment", input);
  let replyingTo = null;
  const onReply = (parent, replies) => {
    replyingTo = { parent, replies };
    label.firstChild.textContent = `Reply to ${parent.author?.username ?? "comment"}`;
    input.focus();
  };
  const form = h("form", { class: "stack" }, label, h("button", { type: "submit" }, "Post comment"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const body = { text: input.value };
      if (replyingTo) body.parent_comment_id = replyingTo.parent.id;
      const created = await api("POST", `/v1/posts/${post.id}/comments`, body);
      (replyingTo ? replyingTo.replies : list).append(comment(created, post.id, onReply));
      input.value = "";
      replyingTo = null;
      label.firstChild.textContent = "Add a comment";
    } catch (e) {
      say(e.message);
    }
  });
  const comments = h("section", { class: "comments", "aria-label": "Comments" }, h("h2", {}, "Comments"), list);
  const sentinel = pagedList(
    list,
    (token) => api("GET", `/v1/posts/${post.id}/comments?page_size=20${token ? `&page_token=${encodeURIComponent(token)}` : ""}`),
    (item) => comment(item, post.id, onReply),
    "No comments yet.",
  );
  return [h("h1", { class: "visually-hidden" }, `Post by ${post.author.username}`), postCard(post, FULL_SIZE), comments, sentinel, form];
}

async function profileView(username) {
  const user = await api("GET", `/v1/users/${encodeURIComponent(username)}`);
  const mine = user.id === me()?.id;
  const head = h(
    "div",
    { class: "profile-head" },
    user.avatar_url && h("img", { class: "avatar", src: user.avatar_url, alt: "", width: 64, height: 64 }),
    h("h1", {}, user.display_name || user.username),
    h("span", { class: "muted" }, `@${user.username}${user.is_private ? " · private" : ""}`),
    h("a", { href: `#/u/${encodeURIComponent(user.username)}/followers` }, counted(user.follower_count, "follower")),
    h("a", { href: `#/u/${encodeURIComponent(user.username)}/following` }, `${user.following_count} following`),
    user.bio && h("p", { class: "bio" }, user.bio),
    // graph_svc keeps only http(s) URLs here; nofollow/ugc as for any link a user wrote.
    user.website && h("a", { href: user.website, rel: "nofollow ugc noopener", target: "_blank" }, user.website.replace(/^https?:\/\//, "")),
  );
  if (!mine) {
    const follow = h("button", { type: "button", class: "primary" }, "Follow");
    const unfollow = h("button", { type: "button" }, "Unfollow");
    follow.addEventListener("click", () =>
      busy(follow, async () => {
        const result = await api("POST", "/v1/follow", { target_user_id: user.id });
        say(result.state === "requested" ? "Follow requested" : `You follow ${user.username}`);
      }),
    );
    unfollow.addEventListener("click", () =>
      busy(unfollow, async () => {
        await api("DELETE", `/v1/follow/${user.id}`);
        say(`You no longer follow ${user.username}`);
      }),
    );
    const mute = h("button", { type: "button" }, "Mute");
    mute.addEventListener("click", () => busy(mute, async () => (await api("POST", "/v1/mutes", { target_user_id: user.id }), say(`Muted ${user.username}`))));
    const block = h("button", { type: "button" }, "Block");
    block.addEventListener("click", () =>
      busy(block, async () => {
        if (!confirm(`Block ${user.username}? They will no longer see your posts, and you theirs.`)) return;
        await api("POST", "/v1/blocks", { target_user_id: user.id });
        say(`Blocked ${user.username}`);
      }),
    );
    head.append(follow, unfollow, mute, block);
  }
  const grid = h("div", { class: "grid", role: "list", "aria-label": "Posts" });
  const sentinel = pagedList(
    grid,
    (token) => api("GET", `/v1/users/${user.id}/posts?page_size=24${token ? `&page_token=${encodeURIComponent(token)}` : ""}`),
    (post) => {
      const media = post.media[0];
      const cell = h("a", { href: `#/p/${post.id}`, role: "listitem", "aria-label": post.caption || `Post ${post.id}` });
      if (media?.blurhash) {
        const canvas = h("canvas", { width: 16, height: 16, "aria-hidden": "true" });
        try { paint(canvas, media.blurhash); cell.append(canvas); } catch { /* grey stands in */ }
      }
      // A grid cell is 130-210 CSS px: the 150 px rendition would blur on a dense screen.
      const small = media?.status === "READY" ? rendition(media, window.devicePixelRatio > 1 ? FEED_SIZE : THUMB_SIZE) : null;
      if (small) cell.append(h("img", { src: small.url, alt: "", loading: "lazy" }));
      return cell;
    },
    user.is_private && !mine ? "This account is private: follow it to see its posts." : "No posts yet.",
  );
  return [head, grid, sentinel];
}

async function followListView(username, which) {
  const user = await api("GET", `/v1/users/${encodeURIComponent(username)}`);
  const list = h("ul", { class: "plain" });
  const sentinel = pagedList(
    list,
    (token) => api("GET", `/v1/users/${user.id}/${which}?page_size=50${token ? `&page_token=${encodeURIComponent(token)}` : ""}`),
    (item) => h("li", {}, userLink(item.user), h("span", { class: "muted" }, `@${item.user.username}`)),
    which === "followers" ? "No followers yet." : "Not following anyone yet.",
  );
  return [h("h1", {}, `${user.username}: ${which}`), list, sentinel];
}

function describe(notification) {
  const names = notification.actors.map((a) => a.display_name || a.username);
  const others = Number(notification.actor_count) - names.length;
  const who = others > 0 ? `${names.join(", ")} and ${others} others` : names.join(" and ");
  const what = {
    like: "liked your post",
    comment: "commented",
    reply: "replied to your comment",
    mention: "mentioned you",
    follow: "started following you",
    follow_request: "asked to follow you",
    follow_accepted: "accepted your follow request",
  }[notification.type.toLowerCase()] || notification.type;
  return `${who} ${what}${notification.comment ? `: ${notification.comment.text}` : ""}`;
}

function notificationItem(notification) {
  const target = notification.post ? `#/p/${notification.post.id}` : `#/u/${encodeURIComponent(notification.actors[0].username)}`;
  return h(
    "li",
    { class: notification.unread ? "unread" : "", "data-group-key": notification.group_key },
    h("a", { href: target }, describe(notification)),
    notification.post?.thumbnail_url ? h("img", { class: "thumb", src: notification.post.thumbnail_url, alt: "" }) : null,
  );
}

let liveList = null;  // the notifications view's list while it is shown, updated by the stream

async function notificationsView() {
  const page = await api("GET", "/v1/notifications?page_size=30");
  const list = h("ul", { class: "plain", "aria-live": "polite", "aria-label": "Notifications" }, page.items.map(notificationItem));
  liveList = list;
  if (page.items.length) {
    const result = await api("POST", "/v1/notifications/read", { up_to_id: page.items[0].id });
    showUnread(result.unread_count);
  }
  return [h("h1", {}, "Notifications"), page.items.length ? list : [h("p", { class: "muted" }, "Nothing yet."), list]];
}

function searchView() {
  const input = h("input", { type: "search", name: "q", autocomplete: "off" });
  const users = h("ul", { class: "plain", "aria-label": "People" });
  const tags = h("ul", { class: "plain", "aria-label": "Hashtags" });
  const form = h("form", { role: "search", class: "stack" }, h("label", {}, "Search people and #hashtags", input), h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = input.value.trim().replace(/^[#@]/, "");
    if (!q) return;
    const [people, found] = await Promise.allSettled([
      api("GET", `/v1/search/users?q=${encodeURIComponent(q)}&page_size=20`),
      api("GET", `/v1/search/tags?q=${encodeURIComponent(q)}&page_size=10`),
    ]);
    users.replaceChildren(...(people.value?.items || []).map((u) => h("li", {}, userLink(u), h("span", { class: "muted" }, `@${u.username}`))));
    tags.replaceChildren(...(found.value?.items || []).map((t) => h("li", {}, h("a", { href: `#/t/${encodeURIComponent(t.name)}` }, `#${t.name}`), h("span", { class: "muted" }, `${t.post_count} posts`))));
    if (!users.childElementCount && !tags.childElementCount) users.append(h("li", { class: "muted" }, "No matches."));
  });
  return [h("h1", {}, "Search"), form, h("h2", {}, "People"), users, h("h2", {}, "Hashtags"), tags];
}

async function tagView(tag) {
  const info = await api("GET", `/v1/tags/${encodeURIComponent(tag)}`);
  const list = h("div", { class: "feed" });
  const sentinel = pagedList(
    list,
    (token) => api("GET", `/v1/tags/${encodeURIComponent(info.name)}/posts?page_size=10${token ? `&page_token=${encodeURIComponent(token)}` : ""}`),
    (post) => postCard(post),
    "No posts with this tag yet.",
  );
  return [h("h1", {}, `#${info.name}`), h("p", { class: "muted" }, `${info.post_count} posts`), list, sentinel];
}

async function storiesView(userId) {
  const { items } = await api("GET", `/v1/users/${encodeURIComponent(userId)}/stories`);
  const shown = [];
  for (const story of items) {
    if (story.media) shown.push(h("figure", { class: "story" }, photo(story.media, FULL_SIZE, `Story by ${story.author?.username ?? "someone"}`)));
    if (!story.viewed) api("POST", `/v1/stories/${story.id}/view`).catch(() => {});
  }
  const name = items[0]?.author?.username ?? "Stories";
  return [h("h1", {}, `${name}'s stories`), shown.length ? shown : h("p", { class: "muted" }, "No active stories.")];
}

async function settingsView() {
  const account = await api("GET", `/v1/users/${encodeURIComponent(me().username)}`);
  const privateBox = h("input", { type: "checkbox", name: "is_private", checked: account.is_private });
  privateBox.addEventListener("change", async () => {
    try {
      const updated = await api("PATCH", "/v1/users/me", { is_private: privateBox.checked });
      say(updated.is_private ? "Your account is private" : "Your account is public");
    } catch (e) {
      privateBox.checked = !privateBox.checked;
      say(e.message);
    }
  });
  const requests = h("ul", { class: "plain", "aria-label": "Follow requests" });
  const requestsEnd = pagedList(
    requests,
    (token) => api("GET", `/v1/follow-requests?page_size=50${token ? `&page_token=${encodeURIComponent(token)}` : ""}`),
    (item) => {
      const row = h("li", {}, userLink(item.user));
      const approve = h("button", { type: "button" }, "Approve");
      const deny = h("button", { type: "button" }, "Deny");
      approve.addEventListener("click", () => busy(approve, async () => (await api("POST", `/v1/follow-requests/${item.user.id}/approve`), row.remove())));
      deny.addEventListener("click", () => busy(deny, async () => (await api("DELETE", `/v1/follow-requests/${item.user.id}`), row.remove())));
      row.append(approve, deny);
      return row;
    },
    "No pending requests.",
  );
  const blocks = h("ul", { class: "plain", "aria-label": "Blocked accounts" });
  const blocksEnd = pagedList(
    blocks,
    (token) => api("GET", `/v1/blocks?page_size=50${token ? `&page_token=${encodeURIComponent(token)}` : ""}`),
    (item) => {
      const row = h("li", {}, userLink(item.user));
      const unblock = h("button", { type: "button" }, "Unblock");
      unblock.addEventListener("click", () => busy(unblock, async () => (await api("DELETE", `/v1/blocks/${item.user.id}`), row.remove())));
      row.append(unblock);
      return row;
    },
    "You have blocked nobody.",
  );
  return [
    h("h1", {}, "Settings"),
    h("label", {}, privateBox, " Private account (only approved followers see your posts)"),
    h("h2", {}, "Follow requests"), requests, requestsEnd,
    h("h2", {}, "Blocked accounts"), blocks, blocksEnd,
    h("h2", {}, "Saved posts"), h("p", {}, h("a", { href: "#/saved" }, "See your saved posts")),
  ];
}

async function savedView() {
  const list = h("div", { class: "feed" });
  const sentinel = pagedList(
    list,
    (token) => api("GET", `/v1/users/me/saved?page_size=10${token ? `&page_token=${encodeURIComponent(token)}` : ""}`),
    (post) => postCard(post),
    "Nothing saved yet.",
  );
  return [h("h1", {}, "Saved"), list, sentinel];
}

// ---- routing and the live badge ----

const ROUTES = [
  [/^#\/login$/, loginView, false],
  [/^#\/signup$/, signupView, false],
  [/^#\/?$/, feedView, true],
  [/^#\/new$/, newPostView, true],
  [/^#\/p\/(\d+)$/, postView, true],
  [/^#\/me$/, () => profileView(me().username), true],
  [/^#\/u\/([^/]+)\/(followers|following)$/, (u, which) => followListView(decodeURIComponent(u), which), true],
  [/^#\/u\/([^/]+)$/, (u) => profileView(decodeURIComponent(u)), true],
  [/^#\/notifications$/, notificationsView, true],
  [/^#\/search$/, searchView, true],
  [/^#\/t\/([^/]+)$/, (t) => tagView(decodeURIComponent(t)), true],
  [/^#\/s\/(\d+)$/, storiesView, true],
  [/^#\/settings$/, settingsView, true],
  [/^#\/saved$/, savedView, true],
];

async function route() {
  const hash = location.hash || "#/";
  const signedIn = Boolean(session());
  document.getElementById("nav").hidden = !signedIn;
  liveList = null;
  const found = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!found) {
    view.replaceChildren(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Go home")));
    return;
  }
  const [pattern, render, needsSession] = found;
  if (needsSession && !signedIn) {
    location.hash = "#/login";
    return;
  }
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === hash) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  view.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    const content = await render(...pattern.exec(hash).slice(1));
    // A view returns a node or a list of them, nested as it builds them (an empty page's list too).
    view.replaceChildren(...[content].flat(Infinity).filter(Boolean));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      saveSession(null);
      location.hash = "#/login";
      return;
    }
    view.replaceChildren(failure(error));
  }
  // Move focus to the new content so keyboard and screen-reader users land on it.
  view.focus({ preventScroll: true });
}

function showUnread(count) {
  const n = Number(count);
  unreadBadge.hidden = !n;
  unreadBadge.textContent = n > 99 ? "99+" : String(n);
  document.getElementById("notifications-link").setAttribute("aria-label", `Notifications, ${n} unread`);
}

let closeStream = null;

/** After log-in (or on load with a session): the unread badge, kept live by the notification stream. */
function started() {
  if (closeStream || !session()) return;
  closeStream = openStream("/v1/notifications/stream", (type, data) => {
    if (data.unread_count !== undefined) showUnread(data.unread_count);
    if (!liveList) return;
    if (type === "notification") {
      liveList.querySelector(`[data-group-key="${CSS.escape(data.notification.group_key)}"]`)?.remove();
      liveList.prepend(notificationItem(data.notification));
    } else if (type === "notification_removed") {
      liveList.querySelector(`[data-group-key="${CSS.escape(data.group_key)}"]`)?.remove();
    }
  });
}

document.getElementById("logout").addEventListener("click", async () => {
  await signOut();
  closeStream?.();
  closeStream = null;
  showUnread(0);
  location.hash = "#/login";
});

window.addEventListener("hashchange", route);
started();
route();
