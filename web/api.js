// The gateway's HTTP API: JSON in and out, the bearer token kept in localStorage and renewed once
// with the refresh token when the access token has expired (401).

const SESSION_KEY = "glimpse.session";

export class ApiError extends Error {
  constructor(status, message, reason) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

export function session() {
  try {
    return JSON.parse(localStorage.getItem(SESSION_KEY));
  } catch {
    return null;
  }
}

export function saveSession(value) {
  if (value) localStorage.setItem(SESSION_KEY, JSON.stringify(value));
  else localStorage.removeItem(SESSION_KEY);
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  let reason = "";
  try {
    const body = await response.json();
    message = body.error?.message || message;
    reason = body.error?.details?.find((d) => d.reason)?.reason || "";
  } catch {
    // Not the gateway's JSON error (a proxy's page): the status line is all there is.
  }
  return new ApiError(response.status, message, reason);
}

// A refresh token works once (the gateway rotates it, and a second use ends the session as stolen),
// so requests that hit 401 together share one refresh.
let refreshing = null;

/** Trades the refresh token for new tokens (shared by every caller that hit 401 at once); resolves
 * to whether it worked (false: signed out). */
export function refresh() {
  refreshing ??= refreshOnce().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function refreshOnce() {
  const current = session();
  if (!current?.refresh_token) return false;
  const response = await fetch("/v1/sessions/refresh", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ refresh_token: current.refresh_token }),
  });
  if (!response.ok) {
    saveSession(null);
    return false;
  }
  saveSession(await response.json());
  return true;
}

/** The bearer header of the current session ({} when signed out). */
export function authorization() {
  const token = session()?.access_token;
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** Calls `method path` with an optional JSON body; resolves to the decoded JSON (null for 204).
 * Throws ApiError with the gateway's message for any error status. */
export async function api(method, path, body, headers = {}, retried = false) {
  const init = { method, headers: { ...authorization(), ...headers } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401 && !retried && session() && (await refresh())) {
    return api(method, path, body, headers, true);
  }
  if (!response.ok) throw await errorOf(response);
  return response.status === 204 ? null : response.json();
}

/** Ends the session on the server (its tokens stop working), then forgets it here. */
export async function signOut() {
  if (session()) {
    try {
      await fetch("/v1/sessions/current", { method: "DELETE", headers: authorization() });
    } catch {
      // Offline: the tokens expire on their own; forgetting them here is what the user asked for.
    }
  }
  saveSession(null);
}

export async function signIn(login, password) {
  saveSession(await api("POST", "/v1/sessions", { login, password }));
  return session();
}

/** Uploads `file` through a grant (POST the form straight to object storage), reporting progress as
 * a fraction 0..1; resolves to the media id. Throws ApiError if the grant or the upload is refused. */
export async function uploadPhoto(file, onProgress) {
  const grant = await api("POST", "/v1/media/upload-url", { content_type: file.type, size_bytes: file.size });
  const form = new FormData();
  for (const [name, value] of Object.entries(grant.form_fields)) form.append(name, value);
  form.append("file", file);
  // XMLHttpRequest, not fetch: only it reports upload progress.
  await new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", grant.url);
    request.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    request.onload = () =>
      request.status < 300
        ? resolve()
        : reject(new ApiError(request.status, `the photo store refused the upload (HTTP ${request.status})`));
    request.onerror = () => reject(new ApiError(0, "the photo store could not be reached; try again"));
    request.send(form);
  });
  return grant.media_id;
}
