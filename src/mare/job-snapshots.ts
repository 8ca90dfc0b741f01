import {
  isTerminalStatus,
  TEMPLATE_KINDS,
  type DraftState,
  type JobStatusDocument,
  type SnapshotDraft,
  type SnapshotTemplate,
} from '../contract/index.js';
import type { Principal } from '../common/api-keys.js';
import type { Logger } from '../common/logger.js';
import { RepeatedErrorLog } from '../common/repeated-error-log.js';
import type { JobLookup } from './job-lookup.js';
import type { TritonClient } from './triton-client.js';

/** A job's whole state as of one seq: its status document and its templates' text. */
export interface JobState {
  doc: JobStatusDocument;
  /** Undefined when the templates could not be read (the snapshot then carries no text). */
  text: { templates: SnapshotTemplate[]; draft: SnapshotDraft | null } | undefined;
}

/** What building snapshots needs. */
export interface JobSnapshotsOptions {
  lookup: JobLookup;
  triton: TritonClient;
  logger: Logger;
}

/**
 * Builds what a `job:snapshot` says: the job's status document (cache first), its finished
 * templates' text (from triton-api) and the text so far of the one being written (the draft,
 * read from history at the snapshot's seq). The document and templates are read after history,
 * so they may be ahead of it: for a running job they are cut back to the templates the draft
 * says were finished at that seq, and the events that follow fill in the rest.
 */
export class JobSnapshots {
  private readonly lookup: JobLookup;
  private readonly triton: TritonClient;
  private readonly errors: RepeatedErrorLog;

  constructor({ lookup, triton, logger }: JobSnapshotsOptions) {
    this.lookup = lookup;
    this.triton = triton;
    this.errors = new RepeatedErrorLog(logger);
  }

  /**
   * The job's state; `draft` is the draft read with history (undefined: none). With a
   * `principal`, a job it may not see is `JOB_NOT_FOUND`.
   */
  async state(
    jobId: string,
    draft: DraftState | undefined,
    principal?: Principal,
  ): Promise<JobState> {
    const doc = await this.lookup.document(jobId, principal);
    let listed: SnapshotTemplate[];
    try {
      const { templates } = await this.triton.listJobTemplates(jobId, { principal });
      listed = templates.map((t) => ({
        template_id: t.id,
        template_index: t.position,
        template_kind: t.kind,
        title: t.title,
        body: t.body,
      }));
    } catch (err) {
      this.errors.warn(err, 'Could not read the templates of a snapshot', { job_id: jobId });
      return { doc, text: undefined };
    }
    if (isTerminalStatus(doc.status)) return { doc, text: { templates: listed, draft: null } };
    const done = draft?.templatesDone ?? 0;
    const finished = listed.filter((t) => t.template_index < done);
    const ids = finished.map((t) => t.template_id);
    return {
      doc: {
        ...doc,
        template_ids: ids,
        template_count: ids.length,
        progress: Math.floor((ids.length * 100) / TEMPLATE_KINDS.length),
      },
      text: { templates: finished, draft: draft?.draft ?? null },
    };
  }
}
