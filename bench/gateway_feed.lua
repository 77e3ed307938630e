-- wrk script of bench/gateway_feed.py: GET <path> with each request signed as the next reader in turn
-- (one bearer token per line of the tokens file; none when the file is empty), and at the end the
-- counts and every latency recorded, as "<microseconds> <count>" lines, written to the output file.
--   WRK_OUTPUT=<latency output file> wrk ... -s bench/gateway_feed.lua <url> -- <tokens file> <path>

-- done() runs in wrk's main Lua state, which init() (one state per thread) never sees: the output
-- file comes from the environment, read by this chunk in every state.
local output = os.getenv("WRK_OUTPUT")
local tokens, path = {}, "/"
local turn = 0

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then tokens[#tokens + 1] = line end
  end
  path = args[2]
  -- Each wrk thread starts at its own place in the list, so threads do not read in lockstep.
  turn = math.random(math.max(#tokens, 1))
end

function request()
  if #tokens == 0 then
    return wrk.format("GET", path)
  end
  turn = turn % #tokens + 1
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tokens[turn] })
end

function done(summary, latency, requests)
  local out = assert(io.open(output, "w"))
  local errors = summary.errors
  out:write(string.format("requests %d\nduration_us %d\nnot_2xx %d\nsocket_errors %d\n", summary.requests,
    summary.duration, errors.status, errors.connect + errors.read + errors.write + errors.timeout))
  for i = 1, #latency do
    local microseconds, count = latency(i)
    out:write(string.format("%d %d\n", microseconds, count))
  end
  out:close()
end
