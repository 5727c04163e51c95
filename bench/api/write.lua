-- Write requests for bench/api/run.py, a new one every request.
--
--   wrk ... -s write.lua URL -- file POOL
--       replays the pre-signed requests in POOL.<thread> (separated by \1); a thread that runs
--       out starts again from its first and the run reports "WRAPPED n".
--   wrk ... -s write.lua URL -- gen OP METHOD PATH VAULT_ARN REGION AKID SALT
--       makes each body as it goes (for servers that check no signature), with an
--       Authorization header naming REGION in its scope (where moto and the winterbaume front
--       take the region from).

local threads = {}
local counter = 0

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   mode = args[1]
   wrapped = 0
   if mode == "file" then
      local f = assert(io.open(args[2] .. "." .. id, "rb"))
      local data = f:read("*a")
      f:close()
      reqs = {}
      for r in string.gmatch(data, "([^\1]+)") do
         reqs[#reqs + 1] = r
      end
      idx = 0
   else
      op, method, path, region, akid, salt = args[2], args[3], args[4], args[6], args[7], args[8]
      headers = {
         ["Content-Type"] = "application/json",
         ["X-Amz-Date"] = os.date("!%Y%m%dT%H%M%SZ"),
         ["Authorization"] = "AWS4-HMAC-SHA256 Credential=" .. akid .. "/" .. os.date("!%Y%m%d")
            .. "/" .. region .. "/backup/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
      }
   end
end

function request()
   if mode == "file" then
      idx = idx + 1
      if idx > #reqs then
         idx = 1
         wrapped = wrapped + 1
      end
      return reqs[idx]
   end
   counter = counter + 1
   local body
   if op == "CreateBackupPlan" then
      body = string.format('{"BackupPlan":{"BackupPlanName":"g%s-%d-%d","Rules":[{"RuleName":"daily",'
         .. '"TargetBackupVaultName":"bench-vault-00"}]}}', salt, id, counter)
   else
      body = string.format('{"Tags":{"bench":"g%s-%d-%d"}}', salt, id, counter)
   end
   return wrk.format(method, path, headers, body)
end

function done(summary, latency, requests)
   local total = 0
   for _, t in ipairs(threads) do
      total = total + (t:get("wrapped") or 0)
   end
   if total > 0 then
      io.write(string.format("WRAPPED %d\n", total))
   end
end
