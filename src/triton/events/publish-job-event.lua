--[[
  Publishes one job event, atomically: assigns the job's next seq, appends the event to the
  job's history stream and to the global history stream, and publishes it on the job's channel
  and on the all-jobs channel. Pub/Sub alone forgets every event nobody was listening for; the
  streams let a late or reconnecting subscriber catch up, and doing it all in one script means
  a subscriber never sees a live event that history lacks, nor the reverse.

  The event's JSON arrives without seq and is never decoded here: seq (and, on the all-jobs
  channel, the global stream id) are appended as text, so the JSON is built once, by the caller
  (cjson would also turn [] into {}).

    Input:
      KEYS[1] the job's seq counter
      KEYS[2] the job's history stream (entry ids 0-{seq}; fields e = event, g = global id)
      KEYS[3] the global history stream (entry ids assigned by Redis; field e = event)
      KEYS[4] this call's receipt: when a call is sent again after a dropped connection
              (Redis ran it, the reply was lost), the receipt turns the resend into a no-op
      KEYS[5] the job's draft: a hash holding the text so far of the template being written
              (i = its position, k = its kind, t = the text, s = the seq that last changed it)

      ARGV[1] the event's JSON object without seq
      ARGV[2] the all-jobs channel
      ARGV[3] the job's channel
      ARGV[4] seconds the job's history and seq counter live after its last event
      ARGV[5] approximate cap of the job's history stream
      ARGV[6] approximate cap of the global history stream
      ARGV[7] the highest seq this publisher already published for the job: should Redis have
              lost the counter (a restart without persistence), seq still never goes backwards
      ARGV[8] seconds the receipt lives
      ARGV[9] what the event does to the draft: 'a' (a delta: append ARGV[12] to the text of
              template ARGV[10], of kind ARGV[11], starting it afresh if another one was being
              written), 'r' (a template was stored: template ARGV[10] is next, with no text yet),
              'd' (the job ended: delete it), '' (nothing)
      ARGV[10] the template position the draft operation is about
      ARGV[11] that template's kind ('' when not known)
      ARGV[12] the text a delta appends

    Output:
      {seq, global stream id}: the first call's answer, also for a resend

    Effects:
      INCR (or raise to ARGV[7] + 1) KEYS[1]; XADD KEYS[3] and KEYS[2]; EXPIRE KEYS[1], KEYS[2];
      HSET (or DEL) and EXPIRE KEYS[5] as ARGV[9] says; PUBLISH ARGV[3] (event), PUBLISH ARGV[2]
      (event with "stream_id"); SET KEYS[4] EX ARGV[8]
]]
local done = redis.call('GET', KEYS[4])
if done then
  local space = string.find(done, ' ', 1, true)
  return {tonumber(string.sub(done, 1, space - 1)), string.sub(done, space + 1)}
end
local seq = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[7])
if seq <= floor then
  seq = floor + 1
  redis.call('SET', KEYS[1], seq)
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
local json = string.sub(ARGV[1], 1, -2) .. ',"seq":' .. seq .. '}'
local gid = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'e', json)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '0-' .. seq, 'e', json, 'g', gid)
redis.call('EXPIRE', KEYS[2], ARGV[4])
local op = ARGV[9]
if op == 'a' then
  local text = ARGV[12]
  if redis.call('HGET', KEYS[5], 'i') == ARGV[10] then
    text = (redis.call('HGET', KEYS[5], 't') or '') .. text
  end
  redis.call('HSET', KEYS[5], 'i', ARGV[10], 'k', ARGV[11], 't', text, 's', seq)
  redis.call('EXPIRE', KEYS[5], ARGV[4])
elseif op == 'r' then
  redis.call('HSET', KEYS[5], 'i', ARGV[10], 'k', ARGV[11], 't', '', 's', seq)
  redis.call('EXPIRE', KEYS[5], ARGV[4])
elseif op == 'd' then
  redis.call('DEL', KEYS[5])
end
redis.call('PUBLISH', ARGV[3], json)
redis.call('PUBLISH', ARGV[2], string.sub(json, 1, -2) .. ',"stream_id":"' .. gid .. '"}')
redis.call('SET', KEYS[4], seq .. ' ' .. gid, 'EX', ARGV[8])
return {seq, gid}
