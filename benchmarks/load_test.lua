-- wrk script for benchmarks/load_test.py: POSTs one REST predict body to one path on
-- every connection, stops each thread after its share of requests, and prints the
-- phase's figures as one JSON line (prefixed LOAD_TEST_RESULT) when wrk is done.
--
--   wrk -t T -c C -d 60s --latency -s load_test.lua URL -- BODY_FILE PATH MAX_REQUESTS_PER_THREAD
--
-- wrk's own error counters leave 3xx out and count 4xx/5xx together; this counts
-- every answer outside 200..299 itself.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local body_file = assert(io.open(args[1], "rb"), "cannot open the body file " .. args[1])
   local body = body_file:read("*a")
   body_file:close()
   request_bytes = wrk.format("POST", args[2], {["Content-Type"] = "application/json"}, body)
   max_requests = tonumber(args[3])
   answered = 0
   non_2xx = 0
   first_bad_status = 0
end

function request()
   return request_bytes
end

function response(status, headers, body)
   answered = answered + 1
   if status < 200 or status > 299 then
      non_2xx = non_2xx + 1
      if first_bad_status == 0 then first_bad_status = status end
   end
   if max_requests > 0 and answered >= max_requests then
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local non_2xx_total, bad_status = 0, 0
   for _, thread in ipairs(threads) do
      non_2xx_total = non_2xx_total + thread:get("non_2xx")
      if bad_status == 0 then bad_status = thread:get("first_bad_status") end
   end
   local errors = summary.errors
   io.write(string.format(
      'LOAD_TEST_RESULT {"requests": %d, "duration_us": %d, "non_2xx": %d, ' ..
      '"first_bad_status": %d, "connect_errors": %d, "read_errors": %d, ' ..
      '"write_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
      summary.requests, summary.duration, non_2xx_total, bad_status, errors.connect,
      errors.read, errors.write, errors.timeout, latency:percentile(50),
      latency:percentile(99), latency.max))
end
