-- Login storm (README "Tests, CI and benchmarks"), run by bench/run.ts: wrk -s bench/bad-login.lua <base>/auth/login -- <one|distributed>
-- Every request is a bad login for a random username. "one": all from X-Real-IP 203.0.113.7, so the
-- throttle answers 429 after the first failures; "distributed": a random X-Real-IP 10.x.y.z per request, so
-- nothing is throttled and every request costs an argon2id verify. Counts responses by status and prints
-- them in done() as one line: login-statuses {"401":n,...,"durationUs":n}

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  mode = args[1] or "one"
  if mode ~= "one" and mode ~= "distributed" then
    error("bad-login.lua: mode must be one or distributed, not " .. tostring(mode))
  end
  statuses = {}
  math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
  local ip = "203.0.113.7"
  if mode == "distributed" then
    ip = string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255), math.random(1, 254))
  end
  local body = string.format('{"username":"storm-%08x","password":"wrong-%08x"}', math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  local headers = { ["Content-Type"] = "application/json", ["X-Real-IP"] = ip }
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses") or {}) do
      total[status] = (total[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(total) do
    table.insert(parts, string.format('"%d":%d', status, count))
  end
  table.insert(parts, string.format('"durationUs":%d', summary.duration))
  io.write("login-statuses {" .. table.concat(parts, ",") .. "}\n")
end
