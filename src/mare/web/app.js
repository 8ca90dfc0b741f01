// The mare-api dashboard: create clients, submit jobs, watch every job live, its templates'
// text included, and cancel the ones still running.
// Plain JS on purpose (no build step): it talks to the API on its own origin, renders with
// textContent and text nodes only (never HTML from data: model output is text), and follows
// /v1/triton/events with EventSource, which reconnects by itself and sends Last-Event-ID so
// nothing is missed or repeated.
// When the gateway asks for API keys, it asks for one first and keeps it in sessionStorage (this
// tab only); EventSource cannot send a header, so the feed opens with a stream token instead,
// fetched afresh for every connection the page makes.

const HISTORY = 200;
/** Rows kept on the page: the newest jobs. */
const MAX_JOBS = 100;
/** Events older than this are history being replayed: shown, but neither read out nor opened. */
const ANNOUNCE_WITHIN_MS = 15_000;
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
/** What each kind of template is called until its title is known. */
const KIND_LABELS = {
  outreach_email: 'Outreach email',
  linkedin_post: 'LinkedIn post',
  landing_page_hero: 'Landing page hero',
  call_script: 'Call script',
  follow_up_email: 'Follow-up email',
  case_study_teaser: 'Case study teaser',
  ad_copy: 'Ad copy',
};

const $ = (selector) => {
  const el = document.querySelector(selector);
  if (!el) throw new Error(`dashboard: missing ${selector}`);
  return el;
};

const ui = {
  main: $('#main'),
  keyCard: $('#key-card'),
  keyForm: $('#key-form'),
  keyInput: $('#key-input'),
  keyStatus: $('#key-status'),
  identity: $('#identity'),
  identityText: $('#identity .identity-text'),
  forgetKey: $('#forget-key'),
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
/** Jobs by id: { doc-like state, lastSeq, template cards, row elements }. */
const jobs = new Map();

// ---------------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(message, status = 0, code = undefined) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------
// API keys: asked for only when the gateway requires them, kept in this tab only

const KEY_STORAGE = 'triton-events.api-key';

/** Whether the gateway requires keys (GET /v1/triton/auth says). */
let authOn = false;
/** The key in use ('' when none). */
let apiKey = readStoredKey();

function readStoredKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) ?? '';
  } catch {
    return '';
  }
}

function storeKey(key) {
  apiKey = key;
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage refused (a private window's policy): the key lasts as long as the page.
  }
}

/**
 * Shows the key form instead of the dashboard, saying why when there is a reason. What the page
 * showed goes with the key: the next key may be another tenant's.
 */
function askForKey(reason = '') {
  storeKey('');
  clearTimeout(reconnectTimer);
  source?.close();
  source = undefined;
  lastEventId = '';
  jobs.clear();
  clients.clear();
  ui.jobs.replaceChildren();
  ui.jobsEmpty.hidden = false;
  ui.clientSelect.replaceChildren();
  ui.main.hidden = true;
  ui.identity.hidden = true;
  ui.keyCard.hidden = false;
  ui.keyStatus.textContent = reason;
  ui.keyStatus.dataset.kind = reason ? 'error' : 'info';
  setConnection('offline', 'No key');
  ui.keyInput.focus();
}

ui.keyForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const key = ui.keyInput.value.trim();
  if (!key) {
    ui.keyStatus.textContent = 'Paste the API key you were given.';
    ui.keyStatus.dataset.kind = 'error';
    return;
  }
  storeKey(key);
  ui.keyForm.reset();
  await start();
});

ui.forgetKey.addEventListener('click', () => askForKey());

async function api(method, path, body) {
  let response;
  const headers =
    body === undefined
      ? { accept: 'application/json' }
      : { 'content-type': 'application/json', accept: 'application/json' };
  if (apiKey) headers.authorization = `Bearer ${apiKey}`;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError('The gateway could not be reached. Is mare-api running?');
  }
  const data = await response.json().catch(() => undefined);
  if (!response.ok) {
    const error = new ApiError(
      data?.error?.message ?? `The gateway answered ${response.status}`,
      response.status,
      data?.error?.code,
    );
    // The key stopped working (revoked): ask for another rather than fail every action.
    if (response.status === 401 && authOn) askForKey(`The key was refused: ${error.message}`);
    throw error;
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

const numbers = new Intl.NumberFormat();

/** What a job's (or a template's) model calls cost, in words; '' when there were none. */
function formatUsage(usage) {
  if (!usage) return '';
  const tokens = usage.prompt_tokens + usage.completion_tokens;
  if (tokens === 0 && usage.requests === 0) return '';
  return `${numbers.format(tokens)} tokens · ${formatDuration(usage.model_ms)} model time`;
}

function usageDetail(usage) {
  return usage
    ? `${numbers.format(usage.prompt_tokens)} prompt + ${numbers.format(usage.completion_tokens)} completion tokens, ${usage.requests} request${usage.requests === 1 ? '' : 's'}`
    : '';
}

/** Folds an event (or a status document) into a job, creating its row when it is new. */
function upsertJob(event) {
  let job = jobs.get(event.job_id);
  const seq = event.seq ?? 0;
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
      usage: null,
      createdAt: event.timestamp ?? new Date().toISOString(),
      lastSeq: 0,
      /**
       * Templates from this position on are seen from their first word. Known from the start
       * for a job met at its first event (or submitted here); else from the first template
       * that starts after a `job:progress` seen here.
       */
      textFrom: seq <= 1 && event.event_type !== 'job:snapshot' ? 0 : Infinity,
      /** Template cards by position. */
      cards: new Map(),
      panelOpen: false,
      /** Whoever opened or closed the templates decides from then on, not the feed. */
      panelChosen: false,
      /** The stored templates were read after the job ended (titles, final text). */
      storedLoaded: false,
      loading: false,
      loadAgain: false,
      cancelling: false,
      note: null,
      row: createRow(event.job_id),
    };
    jobs.set(job.id, job);
    ui.jobs.prepend(job.row.li);
    ui.jobsEmpty.hidden = true;
    trimJobs();
  }
  // Each event once: a reconnect or a reload may bring back some we have.
  if (event.event_type !== 'job:snapshot' && seq !== 0 && seq <= job.lastSeq) return;
  const terminal = TERMINAL.has(job.status);
  job.lastSeq = Math.max(job.lastSeq, seq);
  if (terminal && event.event_type !== 'job:snapshot') return;
  // A document read before the end must not reopen a job whose end is known.
  if (terminal && !TERMINAL.has(event.status)) return;

  if (event.event_type === 'job:delta') {
    // The hot path: only the card changes (and the row, for a job's first text).
    const firstText = job.status !== 'running' || !job.cards.has(event.template_index);
    job.status = 'running';
    if (appendText(job, event) || firstText) renderJob(job);
    return;
  }

  const before = job.status;
  switch (event.event_type) {
    case 'job:queued':
      // A job handed back to the queue (its worker stopped) is queued again, not new.
      if (seq <= 1) job.createdAt = event.timestamp;
      job.status = 'queued';
      break;
    case 'job:started':
      job.status = 'running';
      break;
    case 'job:progress':
      job.status = 'running';
      job.progress = event.progress;
      job.done = event.templates_done;
      job.total = event.templates_total;
      // The next template starts after this event: its text is seen from its first word.
      job.textFrom = Math.min(job.textFrom, event.templates_done);
      markStored(job, event.templates_done);
      break;
    case 'job:completed':
      job.status = 'completed';
      job.progress = 100;
      job.done = job.total = event.template_count;
      job.duration = event.generation_duration_ms;
      job.usage = event.usage ?? null;
      break;
    case 'job:failed':
    case 'job:cancelled':
      job.status = event.status;
      job.error = event.error_message ?? null;
      job.duration = event.generation_duration_ms;
      job.done = event.template_count ?? event.template_ids?.length ?? job.done;
      job.usage = event.usage ?? null;
      break;
    default:
      // A status document (after a resync, or a cancellation's answer): take what it says.
      job.status = event.status;
      if (event.progress != null) job.progress = event.progress;
      if (event.template_count != null) job.done = event.template_count;
      if (event.generation_duration_ms != null) job.duration = event.generation_duration_ms;
      if (event.error_message) job.error = event.error_message;
      if (event.usage) job.usage = event.usage;
      if (!TERMINAL.has(job.status)) markStored(job, job.done);
      break;
  }
  if (TERMINAL.has(job.status)) {
    job.cancelling = false;
    markStored(job, job.done);
    // Only stored templates are kept: the one being written when the job ended is gone.
    for (const card of [...job.cards.values()]) if (!card.done) removeCard(job, card);
  }
  renderJob(job);
  loadTemplatesIfNeeded(job);
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
    cancelled: `cancelled: kept ${job.done} template${job.done === 1 ? '' : 's'}`,
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
    usage: li.querySelector('.job-usage'),
    error: li.querySelector('.job-error'),
    toggle: li.querySelector('.templates-toggle'),
    cancel: li.querySelector('.cancel-button'),
    note: li.querySelector('.job-note'),
    templates: li.querySelector('.templates'),
    templatesStatus: li.querySelector('.templates-status'),
    list: li.querySelector('.template-list'),
  };
  row.id.textContent = shortId(jobId);
  row.id.title = jobId;
  row.templates.id = `templates-${jobId}`;
  row.toggle.setAttribute('aria-controls', row.templates.id);
  row.toggle.addEventListener('click', () => toggleTemplates(jobs.get(jobId)));
  row.cancel.addEventListener('click', () => void cancelJob(jobs.get(jobId)));
  return row;
}

function renderJob(job) {
  const { row } = job;
  const client = clients.get(job.clientId);
  const terminal = TERMINAL.has(job.status);
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
  row.count.textContent =
    terminal && job.status !== 'completed'
      ? keptText(job)
      : job.total
        ? `${job.done}/${job.total} templates`
        : '';
  row.duration.textContent = job.duration != null ? formatDuration(job.duration) : '';
  row.usage.textContent = formatUsage(job.usage);
  row.usage.title = usageDetail(job.usage);
  row.error.hidden = job.status !== 'failed';
  row.error.textContent = job.status === 'failed' ? (job.error ?? 'The job failed.') : '';
  row.toggle.hidden = job.cards.size === 0 && !(terminal && job.done > 0);
  row.toggle.setAttribute('aria-expanded', String(job.panelOpen));
  row.toggle.textContent = job.panelOpen ? 'Hide templates' : 'Show templates';
  row.templates.hidden = !job.panelOpen || row.toggle.hidden;
  row.cancel.hidden = terminal;
  row.cancel.disabled = job.cancelling;
  row.cancel.textContent = job.cancelling ? 'Cancelling…' : 'Cancel job';
  row.note.hidden = !job.note;
  row.note.textContent = job.note ?? '';
}

/** What a failed or cancelled job kept: its stored templates. */
function keptText(job) {
  if (job.done === 0) return '';
  const of = job.total ? ` of ${job.total}` : '';
  return `${job.done}${of} template${job.done === 1 && !of ? '' : 's'} kept`;
}

// ---------------------------------------------------------------------------------------------
// Templates: one card each, its text growing as it is written

/**
 * The card of the template at `index`, created (in order) when it is new. A card holds its text
 * in one text node, so each delta appends to it: no HTML parsing, no re-rendering.
 */
function cardOf(job, index, kind) {
  let card = job.cards.get(index);
  if (card) {
    if (kind && !card.kind) {
      card.kind = kind;
      renderCardHead(card);
    }
    return card;
  }
  const li = document.createElement('li');
  li.dataset.index = String(index);
  const details = document.createElement('details');
  const summary = document.createElement('summary');
  const heading = document.createElement('h3');
  const kindEl = document.createElement('span');
  kindEl.className = 'kind';
  const state = document.createElement('span');
  state.className = 'template-state';
  summary.append(heading, kindEl, state);
  const body = document.createElement('p');
  body.className = 'body';
  const text = document.createTextNode('');
  body.append(text);
  details.append(summary, body);
  li.append(details);
  card = {
    index,
    kind,
    title: null,
    usage: null,
    done: false,
    /** Its beginning was not seen here: the text shown is only the end of it, until loaded. */
    partial: index < job.textFrom,
    /** The card is open because the feed opened it; a reader's choice overrides that. */
    autoOpen: false,
    chosen: false,
    li,
    details,
    heading,
    kindEl,
    state,
    body,
    text,
  };
  const created = card;
  details.addEventListener('toggle', () => {
    if (details.open !== created.autoOpen) created.chosen = true;
  });
  job.cards.set(index, card);
  let next = null;
  for (const other of job.cards.values()) {
    if (other.index > index && (!next || other.index < next.index)) next = other;
  }
  job.row.list.insertBefore(li, next ? next.li : null);
  renderCardHead(card);
  renderCardState(card);
  return card;
}

function removeCard(job, card) {
  card.li.remove();
  job.cards.delete(card.index);
}

function renderCardHead(card) {
  card.heading.textContent = card.title ?? KIND_LABELS[card.kind] ?? `Template ${card.index + 1}`;
  // The kind is said once: by the heading until the title is known, then beside the title.
  card.kindEl.textContent = card.title && card.kind ? card.kind.replaceAll('_', ' ') : '';
  card.kindEl.hidden = !card.kindEl.textContent;
}

function renderCardState(card) {
  card.li.dataset.state = card.done ? 'done' : 'writing';
  if (card.partial) card.li.dataset.partial = 'true';
  else delete card.li.dataset.partial;
  card.state.textContent = card.done ? formatUsage(card.usage) : 'writing…';
  card.state.title = card.done ? usageDetail(card.usage) : '';
}

/** Opens or closes a card for the reader, unless the reader chose otherwise. */
function autoOpenCard(card, open) {
  if (card.chosen || card.autoOpen === open) return;
  card.autoOpen = open;
  card.details.open = open;
}

/** Appends a delta to its template's card; true when that opened the job's templates. */
function appendText(job, event) {
  const card = cardOf(job, event.template_index, event.template_kind);
  // A stored template's text is its stored body: late deltas (a replay) add nothing to it.
  if (card.done) return false;
  card.text.appendData(event.delta);
  if (!isRecent(event.timestamp)) return false;
  // Show what is being written as it is written, unless the reader chose otherwise.
  autoOpenCard(card, true);
  if (job.panelOpen || job.panelChosen) return false;
  job.panelOpen = true;
  return true;
}

/** The job's first `count` templates are stored. */
function markStored(job, count) {
  for (let index = 0; index < count; index++) {
    const card = job.cards.get(index) ?? cardOf(job, index, undefined);
    if (card.done) continue;
    card.done = true;
    renderCardState(card);
    autoOpenCard(card, false);
  }
}

/**
 * Reads a job's stored templates when the page shows them and needs what only the store has:
 * a template whose beginning was missed, or, once the job ended, the titles and final text.
 * One request at a time per job; a need that arises meanwhile is met by one more.
 */
function loadTemplatesIfNeeded(job) {
  if (!job.panelOpen || !jobs.has(job.id)) return;
  const missing = [...job.cards.values()].some((card) => card.done && card.partial);
  if (!missing && !(TERMINAL.has(job.status) && !job.storedLoaded)) return;
  if (job.loading) {
    job.loadAgain = true;
    return;
  }
  void loadTemplates(job);
}

async function loadTemplates(job) {
  job.loading = true;
  job.loadAgain = false;
  const { templatesStatus } = job.row;
  const ended = TERMINAL.has(job.status);
  if (job.cards.size === 0) {
    templatesStatus.hidden = false;
    templatesStatus.textContent = 'Loading templates…';
  }
  try {
    const { templates } = await api('GET', `/v1/triton/jobs/${job.id}/templates`);
    templatesStatus.hidden = true;
    for (const t of templates) {
      const card = cardOf(job, t.position, t.kind);
      card.title = t.title;
      card.usage = t.usage ?? null;
      card.text.data = t.body;
      card.done = true;
      card.partial = false;
      renderCardHead(card);
      renderCardState(card);
      autoOpenCard(card, false);
    }
    if (ended) job.storedLoaded = true;
    renderJob(job);
  } catch (err) {
    templatesStatus.hidden = false;
    templatesStatus.textContent = `Could not load the templates: ${err.message}`;
    job.loading = false;
    return;
  }
  job.loading = false;
  if (job.loadAgain || (TERMINAL.has(job.status) && !job.storedLoaded)) {
    loadTemplatesIfNeeded(job);
  }
}

function toggleTemplates(job) {
  if (!job) return;
  job.panelOpen = !job.panelOpen;
  job.panelChosen = true;
  renderJob(job);
  loadTemplatesIfNeeded(job);
}

/**
 * After a resync some of every job's events may be lost: text being written may have a hole.
 * Each unfinished template keeps only what arrives from now on (marked as the end of a text),
 * and templates stored meanwhile are read back once stored.
 */
function forgetUnseenText() {
  for (const job of jobs.values()) {
    job.textFrom = Infinity;
    for (const card of job.cards.values()) {
      if (card.done) continue;
      card.text.data = '';
      card.partial = true;
      renderCardState(card);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Cancellation

async function cancelJob(job) {
  if (!job || job.cancelling || TERMINAL.has(job.status)) return;
  job.cancelling = true;
  job.note = null;
  renderJob(job);
  try {
    // 202: `job:cancelled` follows on the feed (a queued job's at once, a running one's
    // within a second); the answer may already say so.
    const doc = await api('POST', `/v1/triton/jobs/${job.id}/cancel`);
    upsertJob({ ...doc, event_type: 'job:snapshot', seq: job.lastSeq });
  } catch (err) {
    // It ended before the page heard of it: show how, then why there was nothing to cancel.
    if (err.code === 'JOB_FINISHED') await refreshJob(job);
    job.cancelling = false;
    job.note =
      err.code === 'JOB_FINISHED'
        ? `Could not cancel: ${err.message}.`
        : `Could not cancel the job: ${err.message}`;
    renderJob(job);
    ui.announcer.textContent = job.note;
  }
}

async function refreshJob(job) {
  try {
    const doc = await api('GET', `/v1/triton/jobs/${job.id}`);
    upsertJob({ ...doc, event_type: 'job:snapshot', seq: job.lastSeq });
  } catch {
    // Still unknown or unreachable: its events will tell.
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
 * this runs again only when it gives up (an error status, such as an expired stream token) or
 * after a resync. With keys required, each run fetches a fresh stream token first.
 */
async function connect({ fresh = false } = {}) {
  clearTimeout(reconnectTimer);
  source?.close();
  source = undefined;
  let url =
    fresh || !lastEventId
      ? `/v1/triton/events?history=${HISTORY}`
      : `/v1/triton/events?last_event_id=${encodeURIComponent(lastEventId)}`;
  if (authOn) {
    let grant;
    try {
      grant = await api('POST', '/v1/triton/stream-tokens', {});
    } catch (err) {
      if (err.status === 401) return; // asking for a key already
      retryLater();
      return;
    }
    url += `&token=${encodeURIComponent(grant.stream_token)}`;
  }
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
    // What we missed is no longer in history: reload the recent past, ask for the current
    // state of every job we still show as unfinished, and stop trusting text with a hole.
    setConnection('connecting', 'Resyncing…');
    forgetUnseenText();
    void connect({ fresh: true });
    void refreshUnfinished();
  });
  es.onerror = () => {
    if (es !== source) return;
    if (es.readyState === EventSource.CONNECTING) {
      setConnection('reconnecting', 'Reconnecting…');
      return;
    }
    // Closed for good (an error status, e.g. a gateway at capacity, or a stream token that
    // expired before a reconnection): retry with backoff, and a fresh token.
    retryLater();
  };
}

function retryLater() {
  failures++;
  const delay = Math.min(30_000, 1000 * 2 ** Math.min(failures - 1, 5));
  setConnection('offline', `Offline — retrying in ${Math.round(delay / 1000)} s`);
  reconnectTimer = setTimeout(() => void connect(), delay);
}

async function refreshUnfinished() {
  for (const job of [...jobs.values()]) {
    if (!TERMINAL.has(job.status)) await refreshJob(job);
  }
}

// ---------------------------------------------------------------------------------------------
// Start

/**
 * Asks the gateway whether it requires keys (and whose key this is), then shows the dashboard,
 * or the key form when a key is needed and there is none that works.
 */
async function start() {
  let status = { auth: false };
  try {
    status = await api('GET', '/v1/triton/auth');
  } catch (err) {
    // A refused key: the form is up. An unreachable gateway: the feed says so, and retries.
    if (err.status === 401) return;
  }
  authOn = status.auth === true;
  if (authOn && !status.tenant) {
    askForKey();
    return;
  }
  ui.keyCard.hidden = true;
  ui.main.hidden = false;
  ui.identity.hidden = !authOn;
  ui.identityText.textContent = authOn
    ? `Tenant ${status.tenant}${status.admin ? ' (admin: every tenant)' : ''}`
    : '';
  void connect();
  loadClients().catch((err) => {
    ui.clientSelect.replaceChildren(new Option('Could not load clients', ''));
    say(err.message, 'error');
  });
}

void start();
