-- Token polls over many auth_req_ids, round robin, each thread its own slice.
-- args: ids-file path authorization-header threads
-- With enough ids every one is polled no faster than its interval, so the
-- gateway answers authorization_pending, not slow_down; the counts prove it.
local threads, next_tid = {}, 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

function init(args)
  local file, path, auth, nthreads = args[1], args[2], args[3], tonumber(args[4])
  reqs, n, pending, slow, other = {}, 0, 0, 0, 0
  local headers = {
    ["Authorization"] = auth,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }
  local i = 0
  for id in io.lines(file) do
    if i % nthreads == tid then
      local body = "grant_type=urn%3Aopenid%3Aparams%3Agrant-type%3Aciba&auth_req_id=" .. id
      reqs[#reqs + 1] = wrk.format("POST", path, headers, body)
    end
    i = i + 1
  end
end

function request()
  n = n % #reqs + 1
  return reqs[n]
end

function response(status, headers, body)
  if string.find(body, "authorization_pending", 1, true) then
    pending = pending + 1
  elseif string.find(body, "slow_down", 1, true) then
    slow = slow + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local p, s, o = 0, 0, 0
  for _, t in ipairs(threads) do
    p, s, o = p + t:get("pending"), s + t:get("slow"), o + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d pending=%d slow_down=%d other=%d"
      .. " socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    p, s, o, e.connect + e.read + e.write + e.timeout))
end
