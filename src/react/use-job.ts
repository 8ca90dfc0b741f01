import { useCallback, useEffect, useMemo, useState } from 'react';
import type { JobStatus, JobStatusDocument } from '../contract/index.js';
import {
  MareApiError,
  MareClient,
  type JobWatchTransport,
  type TemplateText,
  type WatchStatus,
} from '../client/index.js';

/** Options of {@link useJob}. Changing one of them starts a new watch. */
export interface UseJobOptions {
  /**
   * The client to watch through. Pass one client made once (outside the component, or
   * memoised), not a new one each render.
   * @defaultValue a client for `baseUrl`
   */
  client?: MareClient;
  /** mare-api's base URL, when no `client` is given. @defaultValue the page's origin */
  baseUrl?: string;
  /** How the watch gets events. @defaultValue 'auto' (SSE, polling when SSE is unavailable) */
  transport?: JobWatchTransport;
  /** Interval between status lookups while polling. @defaultValue 2000 */
  pollIntervalMs?: number;
  /** First reconnection delay, until the server's `retry:` says otherwise. @defaultValue 1000 */
  retryMs?: number;
  /** Longest delay between reconnection attempts. @defaultValue 30000 */
  maxRetryMs?: number;
}

/** What {@link useJob} renders from. */
export interface UseJobResult {
  /** The job's status (`queued`, `running`, `completed`, `failed`, `cancelled`); undefined before the first event. */
  status: JobStatus | undefined;
  /** 0–100 while the job runs and once it completes; null once it failed or was cancelled. */
  progress: number | null;
  /** Each template's text as it is written, in order; once `done`, exactly the stored body. */
  templates: TemplateText[];
  /**
   * Why the job or the watch ended badly: a `JobFailedError` (the job failed; `result` has its
   * document) or a `MareApiError` (unknown job, malformed id, not a mare-api).
   */
  error: Error | undefined;
  /** The job's final status document, once it completed, failed or was cancelled. */
  result: JobStatusDocument | undefined;
  /** Where the connection stands: `connecting`, `open`, `reconnecting`, `polling`, `closed`, or `idle` without a job. */
  connection: WatchStatus | 'idle';
  /**
   * Asks mare-api to cancel the job; resolves once it accepted, or when the job had already
   * ended (the watch reports how it ended either way). Rejects with a `MareApiError` otherwise.
   */
  cancel: () => Promise<void>;
}

interface JobState {
  doc: JobStatusDocument | undefined;
  templates: TemplateText[];
  error: Error | undefined;
  result: JobStatusDocument | undefined;
  connection: WatchStatus | 'idle';
}

const IDLE: JobState = {
  doc: undefined,
  templates: [],
  error: undefined,
  result: undefined,
  connection: 'idle',
};
const CONNECTING: JobState = { ...IDLE, connection: 'connecting' };

/**
 * Follows one job from a React component: its status, progress and templates' text as they
 * are written, over the client's `watchJob` (resuming after dropped connections, applying
 * snapshots, falling back to polling). The stream closes when the component unmounts or
 * `jobId` changes; a null `jobId` watches nothing.
 *
 * @example
 * ```tsx
 * function Job({ jobId }: { jobId: string }) {
 *   const { status, progress, templates, cancel } = useJob(jobId);
 *   return (
 *     <section>
 *       <p>{status} {progress}%</p> <button onClick={() => void cancel()}>Cancel</button>
 *       {templates.map((t) => <pre key={t.index}>{t.text}</pre>)}
 *     </section>
 *   );
 * }
 * ```
 */
export function useJob(
  jobId: string | null | undefined,
  options: UseJobOptions = {},
): UseJobResult {
  const { client: given, baseUrl, transport, pollIntervalMs, retryMs, maxRetryMs } = options;
  const client = useMemo(
    () => given ?? new MareClient(baseUrl === undefined ? {} : { baseUrl }),
    [given, baseUrl],
  );
  const [state, setState] = useState<JobState>(() => (jobId ? CONNECTING : IDLE));

  useEffect(() => {
    // A new job starts from nothing (on the first run this is the state already: no render).
    setState(jobId ? CONNECTING : IDLE);
    if (!jobId) return undefined;
    // A closed watch may still report its closing: that must not touch the next job's state.
    let active = true;
    const update = (change: (s: JobState) => JobState) => {
      if (active) setState(change);
    };
    const watch = client.watchJob(jobId, {
      ...(transport === undefined ? {} : { transport }),
      ...(pollIntervalMs === undefined ? {} : { pollIntervalMs }),
      ...(retryMs === undefined ? {} : { retryMs }),
      ...(maxRetryMs === undefined ? {} : { maxRetryMs }),
      onEvent: () => update((s) => ({ ...s, doc: watch.current })),
      // Copies, because the watch grows its template objects in place: a component memoised
      // on one must get a new object when its text changes.
      onText: () => update((s) => ({ ...s, templates: watch.templates.map((t) => ({ ...t })) })),
      onStatus: (connection) => update((s) => ({ ...s, connection })),
      onError: (error) => update((s) => ({ ...s, error })),
    });
    watch.done.then(
      (result) => update((s) => ({ ...s, doc: result, result })),
      () => undefined,
    );
    return () => {
      active = false;
      watch.close();
    };
  }, [client, jobId, transport, pollIntervalMs, retryMs, maxRetryMs]);

  const cancel = useCallback(async () => {
    if (!jobId) return;
    try {
      await client.cancelJob(jobId);
    } catch (err) {
      if (err instanceof MareApiError && err.code === 'JOB_FINISHED') return;
      throw err;
    }
  }, [client, jobId]);

  return {
    status: state.doc?.status,
    progress: state.doc ? state.doc.progress : 0,
    templates: state.templates,
    error: state.error,
    result: state.result,
    connection: state.connection,
    cancel,
  };
}
