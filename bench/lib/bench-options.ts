import { parseArgs } from 'node:util';

/** The scenarios, in the order `all` runs them. */
export const SCENARIOS = [
  'fanout',
  'per-job',
  'deltas',
  'idle',
  'lookup',
  'polling',
  'queue',
  'cluster',
] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** Every size and rate of a run; `--quick` changes the defaults, flags override them. */
export interface BenchOptions {
  scenarios: ScenarioName[];
  quick: boolean;
  /** Where JSON results go. */
  outDir: string;
  /** SSE connections per load process. */
  connsPerProcess: number;
  /** Heartbeat interval of mare-api and of the baselines alike (mare-api's default). */
  heartbeatMs: number;
  /** Directory for V8 CPU profiles of every server process, when profiling. */
  cpuProfileDir: string | undefined;

  /** 1. fan-out: client counts, events/s, seconds at that rate, events in the saturation burst. */
  fanoutClients: number[];
  fanoutRate: number;
  fanoutSeconds: number;
  fanoutBurst: number;
  fanoutRounds: number;

  /** 2. per-job streams: jobs (one subscriber each), events/s over all of them, seconds. */
  perJobJobs: number;
  perJobRate: number;
  perJobSeconds: number;

  /**
   * Live text: jobs streaming `job:delta`, deltas/s per job, seconds, watchers per job, all-jobs
   * watchers, alternating rounds per server (medians are reported).
   */
  deltaJobs: number;
  deltaRate: number;
  deltaSeconds: number;
  deltaWatchers: number;
  deltaAllWatchers: number;
  deltaRounds: number;

  /** 3. idle memory: connections. */
  idleClients: number;

  /** 4. lookup: cached jobs, autocannon connections, seconds per measured run. */
  lookupJobs: number;
  lookupConnections: number;
  lookupSeconds: number;
  /** Alternating rounds per server (medians are reported). */
  lookupRounds: number;

  /** 5. polling vs push: jobs watched, seconds each job takes, poll interval, job lengths. */
  watchJobs: number;
  jobSeconds: number;
  pollIntervalMs: number;
  /** The original system's jobs took 180–300 s; targets are judged at the first (shortest). */
  seedJobSeconds: number[];

  /** 6. queue: jobs, worker concurrency, templates per job, submissions in flight, database. */
  queueJobs: number;
  queueConcurrency: number;
  queueTemplates: number;
  queueInFlight: number;
  database: 'pglite' | 'postgres';

  /**
   * 7. cluster: jobs (one watcher each) split over gateways, events/s over all of them and
   * seconds at that rate, events in the saturation burst, publishes in flight during it.
   */
  clusterJobs: number;
  clusterGateways: number;
  clusterRate: number;
  clusterSeconds: number;
  clusterBurst: number;
  clusterInFlight: number;
}

const FLAGS = {
  scenario: { type: 'string', short: 's' },
  quick: { type: 'boolean', short: 'q' },
  out: { type: 'string' },
  'conns-per-process': { type: 'string' },
  'cpu-prof': { type: 'string' },
  'heartbeat-ms': { type: 'string' },
  clients: { type: 'string' },
  rate: { type: 'string' },
  seconds: { type: 'string' },
  burst: { type: 'string' },
  jobs: { type: 'string' },
  'job-rate': { type: 'string' },
  'per-job-seconds': { type: 'string' },
  'delta-jobs': { type: 'string' },
  'delta-rate': { type: 'string' },
  'delta-seconds': { type: 'string' },
  'delta-watchers': { type: 'string' },
  'delta-all-watchers': { type: 'string' },
  'delta-rounds': { type: 'string' },
  'idle-clients': { type: 'string' },
  'lookup-jobs': { type: 'string' },
  'lookup-connections': { type: 'string' },
  'lookup-seconds': { type: 'string' },
  'lookup-rounds': { type: 'string' },
  'fanout-rounds': { type: 'string' },
  'watch-jobs': { type: 'string' },
  'job-seconds': { type: 'string' },
  'poll-interval-ms': { type: 'string' },
  'seed-job-seconds': { type: 'string' },
  'queue-jobs': { type: 'string' },
  concurrency: { type: 'string' },
  templates: { type: 'string' },
  'in-flight': { type: 'string' },
  db: { type: 'string' },
  'cluster-jobs': { type: 'string' },
  'cluster-gateways': { type: 'string' },
  'cluster-rate': { type: 'string' },
  'cluster-seconds': { type: 'string' },
  'cluster-burst': { type: 'string' },
  'cluster-in-flight': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const USAGE = `npm run bench -- [options]   (every option also reads BENCH_<NAME>, e.g. BENCH_CLIENTS=2000)

  -s, --scenario LIST      ${SCENARIOS.join(',')} or all (default all)
  -q, --quick              everything small: about two minutes in all
      --out DIR            JSON results directory (default bench/results)
      --conns-per-process N  SSE connections per load process (default 5000)
      --heartbeat-ms N     SSE heartbeat of mare-api and the baselines (default 15000)
      --cpu-prof DIR       write a V8 CPU profile of every server process into DIR
 fan-out    --clients 2000,10000  --rate 20 (events/s)  --seconds 10  --burst 200 (events)  --fanout-rounds 3
 per-job    --jobs 1000  --job-rate 1000 (events/s, all jobs)  --per-job-seconds 10
 deltas     --delta-jobs 200  --delta-rate 10 (deltas/s per job)  --delta-seconds 10
            --delta-watchers 10 (per job)  --delta-all-watchers 200  --delta-rounds 3
 idle       --idle-clients 10000
 lookup     --lookup-jobs 1000  --lookup-connections 50  --lookup-seconds 5  --lookup-rounds 3
 polling    --watch-jobs 20  --job-seconds 10  --poll-interval-ms 2000  --seed-job-seconds 180,300
 queue      --queue-jobs 2000  --concurrency 4  --templates 7  --in-flight 32  --db pglite|postgres
 cluster    --cluster-jobs 400  --cluster-gateways 4  --cluster-rate 1000 (events/s)  --cluster-seconds 10
            --cluster-burst 20000 (events)  --cluster-in-flight 128
`;

function envName(flag: string): string {
  return `BENCH_${flag.replace(/-/g, '_').toUpperCase()}`;
}

/** Parses argv (after the script) with `BENCH_*` variables as fallback. */
export function parseBenchOptions(argv: string[], env: NodeJS.ProcessEnv): BenchOptions | 'help' {
  const { values } = parseArgs({ args: argv, options: FLAGS, allowPositionals: false });
  if (values.help) return 'help';
  const get = (flag: keyof typeof FLAGS): string | undefined => {
    const v = values[flag];
    if (typeof v === 'string') return v;
    return env[envName(flag)];
  };
  const quick = values.quick === true || env.BENCH_QUICK === '1' || env.BENCH_QUICK === 'true';
  const num = (flag: keyof typeof FLAGS, full: number, small: number): number => {
    const raw = get(flag);
    if (raw === undefined || raw === '') return quick ? small : full;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0)
      throw new Error(`--${flag} must be a positive number (got ${raw})`);
    return n;
  };
  const list = get('scenario') ?? 'all';
  const scenarios =
    list === 'all'
      ? [...SCENARIOS]
      : list.split(',').map((s) => {
          const name = s.trim();
          if (!(SCENARIOS as readonly string[]).includes(name)) {
            throw new Error(`unknown scenario ${name}: choose from ${SCENARIOS.join(', ')}, all`);
          }
          return name as ScenarioName;
        });
  const clients = get('clients');
  const db = get('db') ?? 'pglite';
  if (db !== 'pglite' && db !== 'postgres') throw new Error(`--db must be pglite or postgres`);
  return {
    scenarios,
    quick,
    outDir: get('out') ?? 'bench/results',
    connsPerProcess: num('conns-per-process', 5000, 5000),
    cpuProfileDir: get('cpu-prof'),
    heartbeatMs: num('heartbeat-ms', 15_000, 15_000),
    fanoutClients: clients
      ? clients.split(',').map((c) => {
          const n = Number(c);
          if (!Number.isInteger(n) || n <= 0) throw new Error(`--clients: bad count ${c}`);
          return n;
        })
      : quick
        ? [500]
        : [2000, 10_000],
    fanoutRate: num('rate', 20, 20),
    fanoutSeconds: num('seconds', 10, 3),
    fanoutBurst: num('burst', 200, 50),
    fanoutRounds: num('fanout-rounds', 3, 1),
    perJobJobs: num('jobs', 1000, 200),
    perJobRate: num('job-rate', 1000, 200),
    perJobSeconds: num('per-job-seconds', 10, 3),
    deltaJobs: num('delta-jobs', 200, 20),
    deltaRate: num('delta-rate', 10, 10),
    deltaSeconds: num('delta-seconds', 10, 3),
    deltaWatchers: num('delta-watchers', 10, 10),
    deltaAllWatchers: num('delta-all-watchers', 200, 20),
    deltaRounds: num('delta-rounds', 3, 1),
    idleClients: num('idle-clients', 10_000, 1000),
    lookupJobs: num('lookup-jobs', 1000, 200),
    lookupConnections: num('lookup-connections', 50, 20),
    lookupSeconds: num('lookup-seconds', 5, 2),
    lookupRounds: num('lookup-rounds', 3, 2),
    watchJobs: num('watch-jobs', 20, 5),
    jobSeconds: num('job-seconds', 10, 4),
    pollIntervalMs: num('poll-interval-ms', 2000, 2000),
    seedJobSeconds: (get('seed-job-seconds') ?? '180,300').split(',').map((v) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`--seed-job-seconds: bad length ${v}`);
      return n;
    }),
    queueJobs: num('queue-jobs', 2000, 300),
    queueConcurrency: num('concurrency', 4, 4),
    queueTemplates: num('templates', 7, 7),
    queueInFlight: num('in-flight', 32, 16),
    database: db,
    clusterJobs: num('cluster-jobs', 400, 200),
    clusterGateways: num('cluster-gateways', 4, 4),
    clusterRate: num('cluster-rate', 1000, 400),
    clusterSeconds: num('cluster-seconds', 10, 3),
    clusterBurst: num('cluster-burst', 20_000, 4000),
    clusterInFlight: num('cluster-in-flight', 128, 128),
  };
}
