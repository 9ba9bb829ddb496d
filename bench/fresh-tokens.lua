-- wrk script for bench/jwt-fresh.sh and bench/tower.sh: every request carries the next
-- never-used JWT from the file named by $TOKENS, so no server can answer from a cache of
-- verified tokens. $TOKEN_PATH is the path requested (default /v1/session).
local path = os.getenv("TOKEN_PATH") or "/v1/session"
local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do
  tokens[#tokens + 1] = line
end
local next_token = 0

request = function()
  next_token = next_token + 1
  if next_token > #tokens then
    next_token = 1
  end
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tokens[next_token] })
end

done = function(summary)
  -- A wrapped list would repeat tokens, which a caching server answers faster: refuse.
  if summary.requests > #tokens then
    io.stderr:write("TOKENS EXHAUSTED: " .. summary.requests .. " requests, " .. #tokens .. " tokens\n")
  end
end
