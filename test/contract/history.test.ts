import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createKeyspace,
  GENERATION_QUEUE,
  globalEventId,
  historyEntryField,
  HISTORY_FIELD_EVENT,
  HISTORY_FIELD_GLOBAL_ID,
  jobHistoryEntryId,
  parseGlobalEventId,
  seqOfJobHistoryEntryId,
} from '../../src/contract/index.js';
import { clusterSlot, hashTag } from '../helpers/cluster-slot.js';

const JOB_ID = '3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f';

describe('job history entry ids', () => {
  it('are 0-{seq}', () => {
    expect(jobHistoryEntryId(1)).toBe('0-1');
    expect(jobHistoryEntryId(42)).toBe('0-42');
  });

  it('round-trip every positive safe integer seq', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (seq) => {
        expect(seqOfJobHistoryEntryId(jobHistoryEntryId(seq))).toBe(seq);
      }),
    );
  });

  it.each([
    ['a Redis-assigned id', '1733047200000-0'],
    ['seq 0', '0-0'],
    ['a negative seq', '0--1'],
    ['a fractional seq', '0-1.5'],
    ['no seq', '0-'],
    ['letters', '0-abc'],
    ['an empty string', ''],
    ['a seq beyond the safe integers', '0-9007199254740993'],
  ])('reject %s', (_what, id) => {
    expect(seqOfJobHistoryEntryId(id)).toBeUndefined();
  });
});

describe('historyEntryField', () => {
  it('finds a field in the flat list Redis returns, and not a value that looks like a name', () => {
    const fields = [HISTORY_FIELD_EVENT, '{"seq":1}', HISTORY_FIELD_GLOBAL_ID, '1-0'];
    expect(historyEntryField(fields, 'e')).toBe('{"seq":1}');
    expect(historyEntryField(fields, 'g')).toBe('1-0');
    expect(historyEntryField(['x', 'e'], 'e')).toBeUndefined();
    expect(historyEntryField(['e'], 'e')).toBeUndefined();
  });
});

describe('global event ids', () => {
  it('are {job_id}:{seq}:{stream_id}, or {job_id}:{seq} without a position', () => {
    expect(globalEventId(JOB_ID, 7, '1733-2')).toBe(`${JOB_ID}:7:1733-2`);
    expect(globalEventId(JOB_ID, 7)).toBe(`${JOB_ID}:7`);
  });

  it('round-trip any UUID, positive seq and stream position', () => {
    fc.assert(
      fc.property(
        fc.uuid(),
        fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        fc.nat(),
        fc.nat(),
        (id, seq, ms, n) => {
          const streamId = `${ms}-${n}`;
          expect(parseGlobalEventId(globalEventId(id, seq, streamId))).toEqual({
            jobId: id,
            seq,
            streamId,
          });
          expect(parseGlobalEventId(globalEventId(id, seq))).toEqual({ jobId: id, seq });
        },
      ),
    );
  });

  it('parse an upper-case job id to lower case, as job channels and keys use', () => {
    expect(parseGlobalEventId(`${JOB_ID.toUpperCase()}:3`)).toEqual({ jobId: JOB_ID, seq: 3 });
  });

  it.each([
    ['an empty string', ''],
    ['a bare seq', '12'],
    ['a job id without seq', JOB_ID],
    ['an empty seq', `${JOB_ID}:`],
    ['seq 0', `${JOB_ID}:0`],
    ['a negative seq', `${JOB_ID}:-1`],
    ['a fractional seq', `${JOB_ID}:1.5`],
    ['a non-numeric seq', `${JOB_ID}:abc`],
    ['a short job id', 'abc-123:1'],
    ['a job id with a suffix', `${JOB_ID}x:1`],
    ['36 characters that are not a UUID', `${'z'.repeat(36)}:1`],
    ['a UUID-length id with a newline', `${JOB_ID.slice(0, 35)}\n:1`],
    ['a position that is not a stream id', `${JOB_ID}:1:2`],
    ['an empty position', `${JOB_ID}:1:`],
    ['a position with letters', `${JOB_ID}:1:17a-0`],
    ['an extra colon after the position', `${JOB_ID}:1:1733-0:`],
    ['a seq beyond the safe integers', `${JOB_ID}:9007199254740993`],
  ])('reject %s', (_what, id) => {
    expect(parseGlobalEventId(id)).toBeUndefined();
  });
});

describe('createKeyspace', () => {
  it("uses exactly the original system's names without a prefix", () => {
    const k = createKeyspace();
    expect(k.prefix).toBe('');
    expect(k.allJobsChannel).toBe('triton:jobs:all');
    expect(k.jobChannel(JOB_ID)).toBe(`triton:jobs:${JOB_ID}`);
    expect(k.jobResultKey(JOB_ID)).toBe(`triton:job:result:${JOB_ID}`);
  });

  it('prepends the prefix to every channel and key, and changes nothing else', () => {
    const plain = createKeyspace();
    const k = createKeyspace('test-1:');
    expect(k.prefix).toBe('test-1:');
    expect(k.allJobsChannel).toBe('test-1:triton:jobs:all');
    expect(k.jobChannel(JOB_ID)).toBe(`test-1:triton:jobs:${JOB_ID}`);
    expect(k.jobResultKey(JOB_ID)).toBe(`test-1:triton:job:result:${JOB_ID}`);
    // A job's keys carry its channel's name, prefix included, as their hash tag.
    expect(k.jobHistoryKey(JOB_ID)).toBe(`test-1:triton:job:events:{test-1:triton:jobs:${JOB_ID}}`);
    expect(k.jobSeqKey(JOB_ID)).toBe(`test-1:triton:job:seq:{test-1:triton:jobs:${JOB_ID}}`);
    expect(k.globalHistoryKey).toBe(`test-1:${plain.globalHistoryKey}`);
    expect(k.globalReceiptKey('t')).toBe(`test-1:${plain.globalReceiptKey('t')}`);
    expect(k.queuePrefix).toBe(`test-1:${plain.queuePrefix}`);
    expect(k.rateLimitKey('mare-api:write', '::1')).toBe(
      `test-1:${plain.rateLimitKey('mare-api:write', '::1')}`,
    );
    expect(k.cacherLeaseKey).toBe(`test-1:${plain.cacherLeaseKey}`);
  });

  it.each([
    ['no prefix', ''],
    ['a prefix', 'test-1:'],
  ])("puts every key of a job in its channel's cluster slot (%s)", (_what, prefix) => {
    const k = createKeyspace(prefix);
    const slot = clusterSlot(k.jobChannel(JOB_ID));
    for (const key of [
      k.jobHistoryKey(JOB_ID),
      k.jobSeqKey(JOB_ID),
      k.publishReceiptKey(JOB_ID, 'token'),
      k.jobDraftKey(JOB_ID),
      k.jobCancelKey(JOB_ID),
    ]) {
      expect(hashTag(key), key).toBe(k.jobChannel(JOB_ID));
      expect(clusterSlot(key), key).toBe(slot);
    }
  });

  it('puts the global history and its receipts in one slot, and the queue in another', () => {
    const k = createKeyspace('p:');
    expect(clusterSlot(k.globalReceiptKey('token'))).toBe(clusterSlot(k.globalHistoryKey));
    expect(hashTag(k.globalHistoryKey)).toBe('triton:events');
    expect(hashTag(`${k.queuePrefix}:${GENERATION_QUEUE}:wait`)).toBe('triton:queue');
  });

  it('computes slots as Redis does (the specification’s test vectors)', () => {
    expect(clusterSlot('123456789')).toBe(0x31c3);
    expect(clusterSlot('foo')).toBe(12182);
    expect(clusterSlot('{user1000}.following')).toBe(clusterSlot('user1000'));
    // An empty tag does not count; the first `}` after the first `{` ends the tag.
    expect(clusterSlot('foo{}{bar}')).toBe(8363);
    expect(clusterSlot('foo{{bar}}zap')).toBe(4015);
    expect(clusterSlot('foo{bar}{zap}')).toBe(clusterSlot('bar'));
  });

  it('gives every per-job name its own key, distinct from the original channels and each other', () => {
    const k = createKeyspace();
    const names = [
      k.allJobsChannel,
      k.jobChannel(JOB_ID),
      k.jobResultKey(JOB_ID),
      k.jobHistoryKey(JOB_ID),
      k.jobSeqKey(JOB_ID),
      k.globalHistoryKey,
      k.queuePrefix,
      k.cacherLeaseKey,
    ];
    expect(new Set(names).size).toBe(names.length);
  });

  it('is frozen', () => {
    expect(Object.isFrozen(createKeyspace('p:'))).toBe(true);
  });
});
