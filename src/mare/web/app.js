// The mare-api dashboard: create clients, submit jobs, watch every job live.
// Plain JS on purpose (no build step): it talks to the API on its own origin, renders with
// textContent only (never HTML from data), and follows /v1/triton/events with EventSource,
// which reconnects by itself and sends Last-Event-ID so nothing is missed or repeated.

const HISTORY = 200;
/** Rows kept on the page: the newest jobs. */
const MAX_JOBS = 100;
/** Events older than this are history being replayed: shown, but not read out. */
const ANNOUNCE_WITHIN_MS = 15_000;

const $ = (selector) => {
  const el = document.querySelector(selector);
  if (!el) throw new Error(`dashboard: missing ${selector}`);
  return el;
};

const ui = {
  connection: $('#connection'),
  connectionText: $('#connection .connection-text'),
  clientForm: $('#client-form'),
  clientSelect: $('#client-select'),
  generateForm: $('#generate-form'),
  generateButton: $('#generate-button'),
  formStatus: $('#form-status'),
  jobs: $('#jobs'),
  jobsEmpty: $('#jobs-empty'),
  announcer: $('#announcer'),
  jobTemplate: $('#job-template'),
};

/** Clients by id, for naming jobs. */
const clients = new Map();
/** Jobs by id: { doc-like state, lastSeq, row elements }. */
const jobs = new Map();

// ---------------------------------------------------------------------------------------------
// API

class ApiError extends Error {}

async function api(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers:
        body === undefined
          ? { accept: 'application/json' }
          : { 'content-type': 'application/json', accept: 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError('The gateway could not be reached. Is mare-api running?');
  }
  const data = await response.json().catch(() => undefined);
  if (!response.ok) {
    throw new ApiError(data?.error?.message ?? `The gateway answered ${response.status}`);
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Clients and submissions

function clientLabel(client) {
  return `${client.name} — ${client.industry}`;
}

async function loadClients(selectId) {
  const { clients: list } = await api('GET', '/v1/triton/clients?limit=200');
  clients.clear();
  for (const c of list) clients.set(c.id, c);
  const previous = selectId ?? ui.clientSelect.value;
  ui.clientSelect.replaceChildren();
  if (list.length === 0) {
    ui.clientSelect.append(new Option('No clients yet: create one first', ''));
  }
  for (const c of list) ui.clientSelect.append(new Option(clientLabel(c), c.id));
  if (previous && clients.has(previous)) ui.clientSelect.value = previous;
  ui.generateButton.disabled = !ui.clientSelect.value;
  // Jobs listed before their client was known get their names now.
  for (const job of jobs.values()) renderJob(job);
}

function say(message, kind = 'info') {
  ui.formStatus.textContent = message;
  ui.formStatus.dataset.kind = kind;
}

ui.clientForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = ui.clientForm;
  const data = new FormData(form);
  const name = String(data.get('name') ?? '').trim();
  const industry = String(data.get('industry') ?? '').trim();
  const content = String(data.get('content') ?? '').trim();
  const missing = [!name && form.elements.name, !industry && form.elements.industry].filter(
    Boolean,
  );
  for (const input of [form.elements.name, form.elements.industry]) {
    input.setAttribute('aria-invalid', String(missing.includes(input)));
  }
  if (missing.length > 0) {
    say('Name and industry are required.', 'error');
    missing[0].focus();
    return;
  }
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    const client = await api('POST', '/v1/triton/clients', { name, industry });
    if (content) {
      await api('POST', `/v1/triton/clients/${client.id}/value-propositions`, {
        content,
        is_active: true,
      });
    }
    await loadClients(client.id);
    form.reset();
    say(`Client “${client.name}” created${content ? ' with its value proposition' : ''}.`);
    ui.clientSelect.focus();
  } catch (err) {
    say(err.message, 'error');
  } finally {
    button.disabled = false;
  }
});

ui.clientSelect.addEventListener('change', () => {
  ui.generateButton.disabled = !ui.clientSelect.value;
});

ui.generateForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const clientId = ui.clientSelect.value;
  if (!clientId) return;
  ui.generateButton.disabled = true;
  try {
    const accepted = await api('POST', `/v1/triton/clients/${clientId}/generate-templates`);
    say(`Job ${shortId(accepted.job_id)} submitted.`);
    // Show it at once; its events fill it in (they may even have arrived already).
    if (!jobs.has(accepted.job_id)) {
      upsertJob({ job_id: accepted.job_id, client_id: clientId, status: accepted.status });
    }
  } catch (err) {
    say(err.message, 'error');
  } finally {
    ui.generateButton.disabled = !ui.clientSelect.value;
  }
});

// ---------------------------------------------------------------------------------------------
// Jobs

function shortId(id) {
  return id.slice(0, 8);
}

function formatDuration(ms) {
  if (ms == null) return '';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

function formatTime(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleTimeString([], {
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
}

/** Folds an event (or a status document) into a job, creating its row when it is new. */
function upsertJob(event) {
  let job = jobs.get(event.job_id);
  if (!job) {
    job = {
      id: event.job_id,
      clientId: event.client_id,
      status: 'queued',
      progress: 0,
      done: 0,
      total: 0,
      duration: null,
      error: null,
      createdAt: event.timestamp ?? new Date().toISOString(),
      lastSeq: 0,
      row: createRow(event.job_id),
    };
    jobs.set(job.id, job);
    ui.jobs.prepend(job.row.li);
    ui.jobsEmpty.hidden = true;
    trimJobs();
  }
  const seq = event.seq ?? 0;
  // Each event once: a reconnect or a reload may bring back some we have.
  if (event.event_type !== 'job:snapshot' && seq !== 0 && seq <= job.lastSeq) return;
  const terminal = job.status === 'completed' || job.status === 'failed';
  job.lastSeq = Math.max(job.lastSeq, seq);
  if (terminal && event.event_type !== 'job:snapshot') return;

  const before = job.status;
  switch (event.event_type) {
    case 'job:queued':
      job.createdAt = event.timestamp;
      break;
    case 'job:started':
      job.status = 'running';
      break;
    case 'job:progress':
      job.status = 'running';
      job.progress = event.progress;
      job.done = event.templates_done;
      job.total = event.templates_total;
      break;
    case 'job:completed':
      job.status = 'completed';
      job.progress = 100;
      job.done = job.total = event.template_count;
      job.duration = event.generation_duration_ms;
      break;
    case 'job:failed':
      job.status = 'failed';
      job.error = event.error_message;
      job.duration = event.generation_duration_ms;
      break;
    default:
      // A status document (after a resync): take what it says.
      job.status = event.status;
      if (event.progress != null) job.progress = event.progress;
      if (event.template_count != null) job.done = event.template_count;
      if (event.generation_duration_ms != null) job.duration = event.generation_duration_ms;
      if (event.error_message) job.error = event.error_message;
      break;
  }
  renderJob(job);
  if (job.status !== before && isRecent(event.timestamp)) announce(job);
}

function isRecent(iso) {
  return !iso || Date.now() - Date.parse(iso) < ANNOUNCE_WITHIN_MS;
}

function announce(job) {
  const name = clients.get(job.clientId)?.name ?? 'a client';
  const what = {
    queued: 'queued',
    running: 'started',
    completed: `completed: ${job.done} templates in ${formatDuration(job.duration)}`,
    failed: `failed: ${job.error ?? 'no reason given'}`,
  }[job.status];
  ui.announcer.textContent = `Job ${shortId(job.id)} for ${name} ${what}.`;
}

function trimJobs() {
  while (jobs.size > MAX_JOBS) {
    const oldest = ui.jobs.lastElementChild;
    if (!oldest) break;
    jobs.delete(oldest.dataset.jobId);
    oldest.remove();
  }
}

function createRow(jobId) {
  const li = ui.jobTemplate.content.firstElementChild.cloneNode(true);
  li.dataset.jobId = jobId;
  const row = {
    li,
    badge: li.querySelector('.badge'),
    client: li.querySelector('.job-client'),
    id: li.querySelector('.job-id'),
    time: li.querySelector('.job-time'),
    bar: li.querySelector('.bar'),
    fill: li.querySelector('.bar-fill'),
    count: li.querySelector('.job-count'),
    duration: li.querySelector('.job-duration'),
    error: li.querySelector('.job-error'),
    toggle: li.querySelector('.templates-toggle'),
    templates: li.querySelector('.templates'),
  };
  row.id.textContent = shortId(jobId);
  row.id.title = jobId;
  row.templates.id = `templates-${jobId}`;
  row.toggle.setAttribute('aria-controls', row.templates.id);
  row.toggle.addEventListener('click', () => toggleTemplates(jobs.get(jobId)));
  return row;
}

function renderJob(job) {
  const { row } = job;
  const client = clients.get(job.clientId);
  row.li.dataset.status = job.status;
  row.badge.textContent = job.status;
  row.client.textContent = client ? client.name : `Unknown client ${shortId(job.clientId)}`;
  row.time.textContent = formatTime(job.createdAt);
  const progress = Math.round(job.progress);
  row.bar.setAttribute('aria-valuenow', String(progress));
  row.bar.setAttribute(
    'aria-valuetext',
    job.total ? `${progress}%, ${job.done} of ${job.total} templates` : `${progress}%`,
  );
  row.bar.setAttribute('aria-label', `Progress of job ${shortId(job.id)}`);
  row.fill.style.width = `${progress}%`;
  row.count.textContent = job.total ? `${job.done}/${job.total} templates` : '';
  row.duration.textContent = job.duration != null ? formatDuration(job.duration) : '';
  row.error.hidden = job.status !== 'failed';
  row.error.textContent = job.status === 'failed' ? (job.error ?? 'The job failed.') : '';
  row.toggle.hidden = job.status !== 'completed';
}

async function toggleTemplates(job) {
  if (!job) return;
  const { toggle, templates } = job.row;
  const open = toggle.getAttribute('aria-expanded') === 'true';
  toggle.setAttribute('aria-expanded', String(!open));
  toggle.textContent = open ? 'Show templates' : 'Hide templates';
  templates.hidden = open;
  if (open || templates.dataset.loaded) return;
  templates.textContent = 'Loading templates…';
  try {
    const { templates: list } = await api('GET', `/v1/triton/jobs/${job.id}/templates`);
    const ol = document.createElement('ol');
    ol.className = 'template-list';
    // One disclosure per template: seven bodies at once would push every other job away.
    for (const t of list) {
      const li = document.createElement('li');
      const details = document.createElement('details');
      const summary = document.createElement('summary');
      const h = document.createElement('h3');
      h.textContent = t.title;
      const kind = document.createElement('span');
      kind.className = 'kind';
      kind.textContent = t.kind.replaceAll('_', ' ');
      summary.append(h, kind);
      const body = document.createElement('p');
      body.className = 'body';
      body.textContent = t.body;
      details.append(summary, body);
      li.append(details);
      ol.append(li);
    }
    templates.replaceChildren(ol);
    templates.dataset.loaded = 'true';
  } catch (err) {
    templates.textContent = `Could not load the templates: ${err.message}`;
  }
}

// ---------------------------------------------------------------------------------------------
// The live feed

let source;
let reconnectTimer;
let failures = 0;
/** Id of the newest event seen: where a manual reconnect resumes. */
let lastEventId = '';

function setConnection(state, text) {
  ui.connection.dataset.state = state;
  ui.connectionText.textContent = text;
}

/**
 * Opens the feed. Fresh (no id) it replays the recent history first; with an id the gateway
 * resumes right after it. EventSource handles ordinary drops itself (sending Last-Event-ID);
 * this runs again only when it gives up (an error status) or after a resync.
 */
function connect({ fresh = false } = {}) {
  clearTimeout(reconnectTimer);
  source?.close();
  const url =
    fresh || !lastEventId
      ? `/v1/triton/events?history=${HISTORY}`
      : `/v1/triton/events?last_event_id=${encodeURIComponent(lastEventId)}`;
  const es = new EventSource(url);
  source = es;
  es.onopen = () => {
    failures = 0;
    setConnection('live', 'Live');
  };
  es.onmessage = (message) => {
    if (message.lastEventId) lastEventId = message.lastEventId;
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    if (event && typeof event.job_id === 'string') upsertJob(event);
  };
  es.addEventListener('resync', () => {
    // What we missed is no longer in history: reload the recent past, and ask for the current
    // state of every job we still show as unfinished.
    setConnection('connecting', 'Resyncing…');
    connect({ fresh: true });
    void refreshUnfinished();
  });
  es.onerror = () => {
    if (es !== source) return;
    if (es.readyState === EventSource.CONNECTING) {
      setConnection('reconnecting', 'Reconnecting…');
      return;
    }
    // Closed for good (an error status, e.g. a gateway at capacity): retry with backoff.
    failures++;
    const delay = Math.min(30_000, 1000 * 2 ** Math.min(failures - 1, 5));
    setConnection('offline', `Offline — retrying in ${Math.round(delay / 1000)} s`);
    reconnectTimer = setTimeout(() => connect(), delay);
  };
}

async function refreshUnfinished() {
  for (const job of jobs.values()) {
    if (job.status === 'completed' || job.status === 'failed') continue;
    try {
      const doc = await api('GET', `/v1/triton/jobs/${job.id}`);
      upsertJob({ ...doc, event_type: 'job:snapshot', seq: job.lastSeq });
    } catch {
      // Still unknown or unreachable: its events will tell.
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Start

connect();
loadClients().catch((err) => {
  ui.clientSelect.replaceChildren(new Option('Could not load clients', ''));
  say(err.message, 'error');
});
