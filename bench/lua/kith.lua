-- wrk script for every Kith scenario (bench/scenarios.py names them).
--
--   BENCH_SCENARIO=feed_p1 BENCH_DATA=run/data.tsv wrk -s bench/lua/kith.lua ...
--
-- BENCH_DATA is a tab-separated file written by the runner:
--   T <token> <user id>          an access token (the line order gives its index)
--   P <token index> <post id>     a post that token's user may read
--   C <token index> <cursor>      a deep feed cursor of that token's user
--   F <sender index> <receiver index> <receiver id>   two users who are not friends
--   L <username>                  a user who can log in with the benchmark password
-- BENCH_API is Kith's API prefix (kith.core.urls.API_PREFIX; bench/wrk.py passes it).
-- BENCH_DELAY_MS paces each connection (wrk's delay()), for a steady background load.
-- BENCH_PAIR_SLICE "k/n" keeps every n-th friend pair from the k-th (0-based), so the
-- warm-up and the timed run of one data file never send the same request twice.
-- done() prints one line "BENCH_RESULT {json}" that the runner parses.

local scenario = os.getenv("BENCH_SCENARIO") or "feed_p1"
local api = os.getenv("BENCH_API") or "/api/kith/v1"
local data_path = os.getenv("BENCH_DATA")
local pace = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local password = os.getenv("BENCH_PASSWORD") or "benchmark password"

local tokens, token_of_user, posts, cursors, pairs_, logins = {}, {}, {}, {}, {}, {}

local function split(line)
  local fields = {}
  for field in string.gmatch(line, "[^\t]+") do
    fields[#fields + 1] = field
  end
  return fields
end

local slice, slices = string.match(os.getenv("BENCH_PAIR_SLICE") or "0/1", "(%d+)/(%d+)")
slice, slices = tonumber(slice), tonumber(slices)

local function load_data()
  if data_path == nil then
    return
  end
  local pair_line = 0
  for line in io.lines(data_path) do
    local f = split(line)
    if f[1] == "T" then
      tokens[#tokens + 1] = "Bearer " .. f[2]
      token_of_user[f[3]] = #tokens
    elseif f[1] == "P" then
      posts[#posts + 1] = { tonumber(f[2]), f[3] }
    elseif f[1] == "C" then
      cursors[#cursors + 1] = { tonumber(f[2]), f[3] }
    elseif f[1] == "F" then
      if pair_line % slices == slice then
        pairs_[#pairs_ + 1] = { tonumber(f[2]), tonumber(f[3]), f[4] }
      end
      pair_line = pair_line + 1
    elseif f[1] == "L" then
      logins[#logins + 1] = f[2]
    end
  end
end

-- Main state: give each thread its share of the friend pairs, then collect statuses.
local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_index", thread_count)
  threads[#threads + 1] = thread
end

-- Thread state.
statuses = {}
exhausted = 0
local counter = 0
local pending_accepts = {}
local next_pair
local step_pair
local current_post

function init(args)
  load_data()
  math.randomseed(os.time() + (thread_index or 1) * 7919)
  -- Pairs are dealt round-robin, so threads never share one.
  next_pair = thread_index or 1
  step_pair = tonumber(os.getenv("BENCH_THREADS") or "1")
end

local json_headers = { ["Content-Type"] = "application/json" }

local function auth_headers(index, with_body)
  local headers = { ["Authorization"] = tokens[index] }
  if with_body then
    headers["Content-Type"] = "application/json"
  end
  return headers
end

local function random_token()
  return math.random(#tokens)
end

local function random_post()
  return posts[math.random(#posts)]
end

local function feed_first()
  return wrk.format("GET", api .. "/feed?limit=20", auth_headers(random_token(), false))
end

local function feed_deep()
  local entry = cursors[math.random(#cursors)]
  return wrk.format("GET", api .. "/feed?limit=20&cursor=" .. entry[2], auth_headers(entry[1], false))
end

local function get_post(entry)
  return wrk.format("GET", api .. "/posts/" .. entry[2], auth_headers(entry[1], false))
end

local function get_comments(entry)
  return wrk.format("GET", api .. "/posts/" .. entry[2] .. "/comments?limit=20", auth_headers(entry[1], false))
end

local function create_post()
  counter = counter + 1
  local body = '{"content":"Benchmark post ' .. counter .. ' from thread ' .. (thread_index or 1)
    .. '","visibility":"friends"}'
  return wrk.format("POST", api .. "/posts", auth_headers(random_token(), true), body)
end

local function like(entry)
  return wrk.format("POST", api .. "/posts/" .. entry[2] .. "/like", auth_headers(entry[1], false))
end

local function unlike(entry)
  return wrk.format("DELETE", api .. "/posts/" .. entry[2] .. "/like", auth_headers(entry[1], false))
end

local function comment(entry)
  counter = counter + 1
  return wrk.format("POST", api .. "/posts/" .. entry[2] .. "/comments", auth_headers(entry[1], true),
    '{"content":"Benchmark comment ' .. counter .. '"}')
end

local function login()
  local name = logins[math.random(#logins)]
  return wrk.format("POST", api .. "/auth/login", json_headers,
    '{"username":"' .. name .. '","password":"' .. password .. '"}')
end

local function friend_step()
  local accept = table.remove(pending_accepts, 1)
  if accept ~= nil then
    return wrk.format("PATCH", api .. "/friend-requests/" .. accept[1], auth_headers(accept[2], true),
      '{"action":"accept"}')
  end
  local pair = pairs_[next_pair]
  if pair == nil then
    -- Out of fresh pairs: keep the connection busy with a read rather than a conflict.
    exhausted = exhausted + 1
    return feed_first()
  end
  next_pair = next_pair + step_pair
  return wrk.format("POST", api .. "/friend-requests", auth_headers(pair[1], true),
    '{"receiver_id":"' .. pair[3] .. '"}')
end

local function mixed()
  local roll = math.random(100)
  if roll <= 40 then
    return feed_first()
  elseif roll <= 60 then
    return get_post(random_post())
  elseif roll <= 80 then
    return get_comments(random_post())
  elseif roll <= 85 then
    return create_post()
  elseif roll <= 90 then
    return like(random_post())
  elseif roll <= 95 then
    return unlike(random_post())
  end
  return comment(random_post())
end

function request()
  if scenario == "feed_p1" or scenario:sub(1, 7) == "ceiling" or scenario:sub(1, 5) == "floor" then
    return feed_first()
  elseif scenario == "feed_deep" then
    return feed_deep()
  elseif scenario == "post_view" then
    counter = counter + 1
    if counter % 2 == 1 then
      current_post = random_post()
      return get_post(current_post)
    end
    return get_comments(current_post)
  elseif scenario == "create_post" then
    return create_post()
  elseif scenario == "like_unlike" then
    counter = counter + 1
    if counter % 2 == 1 then
      current_post = random_post()
      return like(current_post)
    end
    return unlike(current_post)
  elseif scenario == "comment" then
    return comment(random_post())
  elseif scenario == "friend" then
    return friend_step()
  elseif scenario == "mixed" then
    return mixed()
  elseif scenario == "login" then
    return login()
  end
  error("unknown BENCH_SCENARIO " .. scenario)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if scenario == "friend" and status == 201 and body ~= nil then
    -- A new pending request: its receiver accepts it next.
    local id = string.match(body, '^{"id":"([^"]+)"')
    local receiver = string.match(body, '"receiver":{"id":"([^"]+)"')
    local index = receiver and token_of_user[receiver]
    if id ~= nil and index ~= nil then
      pending_accepts[#pending_accepts + 1] = { id, index }
    end
  end
end

if pace > 0 then
  function delay()
    return pace
  end
end

function done(summary, latency, requests)
  local merged, fallback = {}, 0
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for status, count in pairs(counts) do
      merged[status] = (merged[status] or 0) + count
    end
    fallback = fallback + (thread:get("exhausted") or 0)
  end
  local parts = {}
  for status, count in pairs(merged) do
    parts[#parts + 1] = string.format('"%d":%d', status, count)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us":%d,"requests":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"max_us":%d,"mean_us":%.1f,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"statuses":{%s},"pairs_exhausted":%d}\n',
    summary.duration, summary.requests, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(parts, ","), fallback))
end
