// Server-Sent Events read with fetch: EventSource cannot send the Authorization header the gateway's
// stream needs, and a token in the URL would end up in logs. Reconnects after the server's `retry`
// delay, sending Last-Event-ID so nothing is missed. The gateway ends a stream when its access token
// expires or its session ends: a 401 on reconnecting is answered with one token refresh.

import { authorization, refresh } from "./api.js";

/** Opens `path` as an event stream; `onEvent(type, data)` gets each event's parsed JSON data.
 * Returns a function that closes the stream for good. */
export function openStream(path, onEvent) {
  const controller = new AbortController();
  let lastId = "";
  let retry = 2000;

  const dispatch = (block) => {
    let type = "message", data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;  // a keep-alive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") type = value;
      else if (field === "data") data += (data ? "\n" : "") + value;
      else if (field === "id") lastId = value;
      else if (field === "retry" && /^\d+$/.test(value)) retry = Number(value);
    }
    if (data) onEvent(type, JSON.parse(data));
  };

  const run = async () => {
    let refreshed = false;
    while (!controller.signal.aborted) {
      try {
        const headers = { ...authorization(), accept: "text/event-stream" };
        if (lastId) headers["last-event-id"] = lastId;
        const response = await fetch(path, { headers, signal: controller.signal });
        if (response.status === 401) {
          // The access token expired: reconnect at once with a fresh one. A second 401 in a row, or
          // a failed refresh, means signed out: the page asks for a log-in.
          if (!refreshed && (await refresh())) {
            refreshed = true;
            continue;
          }
          return;
        }
        refreshed = false;
        if (response.ok) {
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += value.replace(/\r\n?/g, "\n");
            let end;
            while ((end = buffer.indexOf("\n\n")) >= 0) {
              dispatch(buffer.slice(0, end));
              buffer = buffer.slice(end + 2);
            }
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return;
      }
      await new Promise((resolve) => setTimeout(resolve, retry));
    }
  };
  run();
  return () => controller.abort();
}
