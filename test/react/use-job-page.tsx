import { useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { useJob } from '../../src/react/index.js';

/**
 * A page for the hook's browser test: one job rendered through `useJob`, every render's texts
 * and connection state recorded on `window.record`, and controls on `window.page` to switch job,
 * cancel and unmount.
 */

export interface PageRecord {
  /** The templates' texts at each render, in order. */
  texts: string[][];
  /** Every connection state rendered, in order (repeats collapsed). */
  connections: string[];
}

export interface PageControls {
  watch(jobId: string | null): void;
  cancel(): Promise<string>;
  unmount(): void;
}

declare global {
  interface Window {
    record: PageRecord;
    page: PageControls;
  }
}

const params = new URLSearchParams(location.search);
const baseUrl = params.get('mare') ?? undefined;
window.record = { texts: [], connections: [] };

function JobView({ jobId }: { jobId: string | null }) {
  const { status, progress, templates, error, result, connection, cancel } = useJob(jobId, {
    baseUrl,
    retryMs: 100,
  });
  useEffect(() => {
    window.record.texts.push(templates.map((t) => t.text));
  }, [templates]);
  useEffect(() => {
    const seen = window.record.connections;
    if (seen.at(-1) !== connection) seen.push(connection);
  }, [connection]);
  useEffect(() => {
    window.page.cancel = () =>
      cancel().then(
        () => 'accepted',
        (err: Error) => err.message,
      );
  }, [cancel]);
  return (
    <section
      data-status={status ?? ''}
      data-progress={progress ?? ''}
      data-connection={connection}
      data-result={result?.status ?? ''}
    >
      {error && <p className="error">{error.name}</p>}
      {templates.map((t) => (
        <pre key={t.index} data-done={String(t.done)}>
          {t.text}
        </pre>
      ))}
    </section>
  );
}

function App() {
  const [jobId, setJobId] = useState<string | null>(params.get('job'));
  const [mounted, setMounted] = useState(true);
  window.page = {
    ...window.page,
    watch: setJobId,
    unmount: () => setMounted(false),
  };
  return mounted ? <JobView jobId={jobId} /> : <p id="unmounted">unmounted</p>;
}

const root = document.getElementById('root');
if (root) createRoot(root).render(<App />);
