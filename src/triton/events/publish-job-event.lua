--[[
  Publishes one job event: assigns the job's next seq, appends the event to the job's history
  stream and to the global history stream, and publishes it on the job's channel and on the
  all-jobs channel. Pub/Sub alone forgets every event nobody was listening for; the streams let
  a late or reconnecting subscriber catch up, and writing history in the same script that
  publishes means a subscriber never sees a live event that history lacks.

  The event's JSON arrives without seq and is never decoded here: seq (and, on the all-jobs
  channel, the global stream id) are appended as text, so the JSON is built once, by the caller
  (cjson would also turn [] into {}).

  ARGV[1] says how much of that one call does:
  - 'all' (a single server): all of it, atomically.
  - 'job' (a cluster, first step, on the slot of the job's channel): seq, the job's history and
    draft, SPUBLISH on the job's channel.
  - 'global' (a cluster, second step, on the slot of the global history): the global history
    and PUBLISH on the all-jobs channel (classic Pub/Sub reaches every node).
  Every call is idempotent on resend (its receipt), so a call whose reply was lost (a dropped
  connection, a failover) is simply sent again.

    Input, modes 'all' and 'job':
      KEYS[1] the job's seq counter
      KEYS[2] the job's history stream (entry ids 0-{seq}; fields e = event, g = global id,
              the latter in mode 'all' only)
      KEYS[3] this call's receipt: when a call is sent again after a dropped connection
              (Redis ran it, the reply was lost), the receipt turns the resend into a no-op
      KEYS[4] the job's draft: a hash holding the text so far of the template being written
              (i = its position, k = its kind, t = the text, s = the seq that last changed it)
      KEYS[5] the global history stream (entry ids assigned by Redis; field e = event); mode
              'all' only

      ARGV[1] 'all' or 'job'
      ARGV[2] the event's JSON object without seq
      ARGV[3] the job's channel
      ARGV[4] seconds the job's history and seq counter live after its last event
      ARGV[5] approximate cap of the job's history stream
      ARGV[6] the highest seq this publisher already published for the job: should Redis have
              lost the counter (a restart without persistence, a failover), seq still never
              goes backwards
      ARGV[7] seconds the receipt lives
      ARGV[8] what the event does to the draft: 'a' (a delta: append ARGV[11] to the text of
              template ARGV[9], of kind ARGV[10], starting it afresh if another one was being
              written), 'r' (a template was stored: template ARGV[9] is next, with no text yet),
              'd' (the job ended: delete it), '' (nothing)
      ARGV[9] the template position the draft operation is about
      ARGV[10] that template's kind ('' when not known)
      ARGV[11] the text a delta appends
      ARGV[12] the all-jobs channel (mode 'all')
      ARGV[13] approximate cap of the global history stream (mode 'all')

    Input, mode 'global':
      KEYS[1] the global history stream
      KEYS[2] this call's receipt

      ARGV[1] 'global'
      ARGV[2] the event's JSON object with its seq (as the 'job' step built it)
      ARGV[3] the all-jobs channel
      ARGV[4] approximate cap of the global history stream
      ARGV[5] seconds the receipt lives
      ARGV[6] the event's seq

    Output:
      {seq, global stream id} ('' for the global id in mode 'job'): the first call's answer,
      also for a resend

    Effects:
      'all': INCR (or raise to ARGV[6] + 1) KEYS[1]; XADD KEYS[5] and KEYS[2]; EXPIRE KEYS[1],
        KEYS[2]; HSET (or DEL) and EXPIRE KEYS[4] as ARGV[8] says (EXPIRE alone for '');
        PUBLISH ARGV[3] (event), PUBLISH ARGV[12] (event with "stream_id"); SET KEYS[3] EX ARGV[7]
      'job': the same without KEYS[5] and field g, SPUBLISH ARGV[3] instead of both PUBLISHes
      'global': XADD KEYS[1]; PUBLISH ARGV[3] (event with "stream_id"); SET KEYS[2] EX ARGV[5]
]]
local mode = ARGV[1]

-- The event as the all-jobs channel carries it: with its position in the global history.
local function with_stream_id(json, gid)
  return string.sub(json, 1, -2) .. ',"stream_id":"' .. gid .. '"}'
end

if mode == 'global' then
  local done = redis.call('GET', KEYS[2])
  if done then
    return {tonumber(ARGV[6]), done}
  end
  local gid = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[2])
  redis.call('PUBLISH', ARGV[3], with_stream_id(ARGV[2], gid))
  redis.call('SET', KEYS[2], gid, 'EX', ARGV[5])
  return {tonumber(ARGV[6]), gid}
end

local done = redis.call('GET', KEYS[3])
if done then
  local space = string.find(done, ' ', 1, true)
  return {tonumber(string.sub(done, 1, space - 1)), string.sub(done, space + 1)}
end
local seq = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[6])
if seq <= floor then
  seq = floor + 1
  redis.call('SET', KEYS[1], seq)
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
local json = string.sub(ARGV[2], 1, -2) .. ',"seq":' .. seq .. '}'
local gid = ''
if mode == 'all' then
  gid = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[13], '*', 'e', json)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '0-' .. seq, 'e', json, 'g', gid)
else
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '0-' .. seq, 'e', json)
end
redis.call('EXPIRE', KEYS[2], ARGV[4])
local op = ARGV[8]
if op == 'a' then
  local text = ARGV[11]
  if redis.call('HGET', KEYS[4], 'i') == ARGV[9] then
    text = (redis.call('HGET', KEYS[4], 't') or '') .. text
  end
  redis.call('HSET', KEYS[4], 'i', ARGV[9], 'k', ARGV[10], 't', text, 's', seq)
  redis.call('EXPIRE', KEYS[4], ARGV[4])
elseif op == 'r' then
  redis.call('HSET', KEYS[4], 'i', ARGV[9], 'k', ARGV[10], 't', '', 's', seq)
  redis.call('EXPIRE', KEYS[4], ARGV[4])
elseif op == 'd' then
  redis.call('DEL', KEYS[4])
else
  -- The text so far lives as long as the history it belongs with (a no-op with no draft).
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
if mode == 'all' then
  redis.call('PUBLISH', ARGV[3], json)
  redis.call('PUBLISH', ARGV[12], with_stream_id(json, gid))
else
  redis.call('SPUBLISH', ARGV[3], json)
end
redis.call('SET', KEYS[3], seq .. ' ' .. gid, 'EX', ARGV[7])
return {seq, gid}
