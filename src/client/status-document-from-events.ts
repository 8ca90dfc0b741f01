import {
  isTerminalEvent,
  statusDocumentFromTerminalEvent,
  TERMINAL_STATUSES,
  type JobEvent,
  type JobSnapshot,
  type JobStatusDocument,
} from '../contract/index.js';

/** What a job watch yields: the job's events, and snapshots when history had to be skipped. */
export type JobWatchEvent = JobEvent | JobSnapshot;

/** The status document a snapshot carries, without its event framing. */
export function statusDocumentOfSnapshot(snapshot: JobSnapshot): JobStatusDocument {
  const {
    event_type: _type,
    timestamp: _at,
    seq: _seq,
    templates: _templates,
    draft: _draft,
    ...doc
  } = snapshot;
  return doc;
}

/**
 * Folds one event into a job's status document, the way `GET /v1/triton/jobs/{id}` would
 * answer after it. A finished job stays finished: a stray older event never reopens it.
 *
 * @param doc - the document so far, or undefined before the first event.
 */
export function applyJobEvent(
  doc: JobStatusDocument | undefined,
  event: JobWatchEvent,
): JobStatusDocument {
  if (event.event_type === 'job:snapshot') return statusDocumentOfSnapshot(event);
  if (doc && TERMINAL_STATUSES.has(doc.status)) return doc;
  if (isTerminalEvent(event)) return statusDocumentFromTerminalEvent(event);

  const base: JobStatusDocument = doc ?? {
    job_id: event.job_id,
    client_id: event.client_id,
    status: 'queued',
    progress: 0,
    template_ids: [],
    template_count: 0,
    generation_duration_ms: null,
    error_message: null,
    completed_at: null,
  };
  switch (event.event_type) {
    case 'job:queued':
      return { ...base, status: 'queued' };
    case 'job:started':
    case 'job:delta':
      return { ...base, status: 'running' };
    case 'job:progress': {
      // triton-api lists a running job's finished templates, in order: do the same.
      const template_ids = base.template_ids.includes(event.template_id)
        ? base.template_ids
        : [...base.template_ids, event.template_id];
      return {
        ...base,
        status: 'running',
        progress: event.progress,
        template_ids,
        template_count: template_ids.length,
      };
    }
  }
}

/**
 * The job's status document after all of `events` (in `seq` order, as a watch yields them),
 * or undefined when there were none. After a terminal event it equals what mare-api caches.
 */
export function statusDocumentFromEvents(
  events: Iterable<JobWatchEvent>,
): JobStatusDocument | undefined {
  let doc: JobStatusDocument | undefined;
  for (const event of events) doc = applyJobEvent(doc, event);
  return doc;
}
