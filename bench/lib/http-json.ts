/** POSTs JSON and returns the parsed answer; throws unless the status is `expected`. */
export async function postJson<T>(url: string, body: unknown, expected: number): Promise<T> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  const text = await response.text();
  if (response.status !== expected) {
    throw new Error(`POST ${url}: HTTP ${response.status} ${text.slice(0, 200)}`);
  }
  return JSON.parse(text) as T;
}

/** Creates a client with an active value proposition through triton-api; returns its id. */
export async function createBenchClient(tritonUrl: string): Promise<string> {
  const client = await postJson<{ id: string }>(
    `${tritonUrl}/clients/`,
    { name: 'Benchmark Client', industry: 'Healthcare' },
    201,
  );
  await postJson(
    `${tritonUrl}/clients/${client.id}/value-propositions`,
    {
      content: 'We reduce hospital readmissions by 30% through AI-powered care coordination',
      is_active: true,
    },
    201,
  );
  return client.id;
}

/** Runs `task(i)` for i in [0, count) with at most `limit` running at once. */
export async function inParallel(
  count: number,
  limit: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, lane));
}
