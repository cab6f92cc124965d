-- Correct logins, run by bench/mikopbx-login.ts: wrk -s bench/good-login.lua <base>/auth/login -- <username> <password>
-- Each request from a random X-Real-IP 10.x.y.z, so the throttle's per-address counters never decide anything.
-- Counts responses by status and prints them in done() as one line: login-statuses {"200":n,...,"durationUs":n}

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  body = string.format('{"username":"%s","password":"%s"}', args[1], args[2])
  statuses = {}
  math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
  local ip = string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255), math.random(1, 254))
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
