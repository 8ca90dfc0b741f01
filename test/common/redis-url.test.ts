import { describe, expect, it } from 'vitest';
import { parseSentinelUrl, redactUrl, sentinelOptionsOf } from '../../src/common/redis.js';

describe('parseSentinelUrl', () => {
  it('reads every sentinel, the master name, the database and the data nodes’ credentials', () => {
    expect(
      parseSentinelUrl(
        'redis+sentinel://app:p%40ss%2Fword@s1:26380,[::1],10.0.0.3:1/my%20master/5',
      ),
    ).toEqual({
      sentinels: [
        { host: 's1', port: 26380 },
        { host: '::1', port: 26379 },
        { host: '10.0.0.3', port: 1 },
      ],
      name: 'my master',
      db: 5,
      username: 'app',
      password: 'p@ss/word',
    });
    expect(parseSentinelUrl('redis+sentinel://:pw@s1/m')).toEqual({
      sentinels: [{ host: 's1', port: 26379 }],
      name: 'm',
      db: 0,
      password: 'pw',
    });
  });

  it('leaves other schemes to the URL parser', () => {
    expect(parseSentinelUrl('redis://s1:6379')).toBeUndefined();
    expect(sentinelOptionsOf('rediss://s1:6379')).toBeUndefined();
  });

  it.each([
    ['redis+sentinel://s1:26379', /names no master/],
    ['redis+sentinel://s1:26379/', /names no master/],
    ['redis+sentinel://s1/m/x', /has a path other than/],
    ['redis+sentinel://s1/m/0/1', /has a path other than/],
    ['redis+sentinel://s1:0/m', /bad sentinel address "s1:0"/],
    ['redis+sentinel://s1,,s2/m', /bad sentinel address ""/],
    ['redis+sentinel://s1:26379:1/m', /bad sentinel address/],
    ['redis+sentinel://u:%zz@s1/m', /bad %-escape/],
  ])('refuses %s, saying why', (url, why) => {
    expect(() => parseSentinelUrl(url)).toThrow(why);
  });

  it('never quotes the URL, whose password it may hold, in what it throws', () => {
    expect(() => parseSentinelUrl('redis+sentinel://u:hunter2@s1:0/m')).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('hunter2') as string }),
    );
  });
});

describe('sentinelOptionsOf', () => {
  it('asks the sentinels for the master, and hears of a failover from them at once', () => {
    expect(sentinelOptionsOf('redis+sentinel://u:pw@s1,s2:26380/mymaster/1')).toMatchObject({
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
      ],
      name: 'mymaster',
      db: 1,
      username: 'u',
      password: 'pw',
      failoverDetector: true,
    });
  });
});

describe('redactUrl', () => {
  it('hides the password of a Sentinel URL as of any other', () => {
    expect(redactUrl('redis+sentinel://u:hunter2@s1,s2/m')).toBe('redis+sentinel://u:***@s1,s2/m');
    expect(redactUrl('redis://:hunter2@h:6379/0')).toBe('redis://:***@h:6379/0');
  });
});
