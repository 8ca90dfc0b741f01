import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * Ports the kernel hands out to outgoing connections (every client socket a test opens takes
 * one): a port chosen among these can be taken by a connection between the moment it is found
 * free and the moment a child process binds it.
 */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low && high && low <= high) return [low, high];
  } catch {
    // not Linux
  }
  return [32768, 60999];
}

const [ephemeralLow, ephemeralHigh] = ephemeralRange();

/** Port numbers below the ephemeral range that a test may bind. */
const LOW = 10_000;
const HIGH = ephemeralLow > LOW + 1000 ? ephemeralLow - 1 : 0;

function bindable(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const bound = typeof address === 'object' && address ? address.port : undefined;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * A TCP port that was free a moment ago on loopback, chosen at random outside the ephemeral
 * range (see above) so that nothing but another test binding on purpose can take it meanwhile.
 */
export async function freePort(): Promise<number> {
  if (HIGH > LOW) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
      if (port >= ephemeralLow && port <= ephemeralHigh) continue;
      const bound = await bindable(port);
      if (bound !== undefined) return bound;
    }
  }
  const any = await bindable(0);
  if (any === undefined) throw new Error('no free port on 127.0.0.1');
  return any;
}
