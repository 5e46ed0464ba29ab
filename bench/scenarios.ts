import autocannon from 'autocannon';
import { Pool } from 'undici';
import { RESOURCE, type Ready } from './fixtures.js';
import { percentile } from './percentile.js';
import { basicAuth, signInFlow, type Tokens } from './flow.js';

export type Load = { duration: number; connections: number };
export type Outcome = {
  requests: number;
  seconds: number;
  p50: number;
  p99: number;
  errors: number;
  detail?: string;
  /** Open-loop runs: how late the load generator itself handed requests over (p99 and longest, ms). */
  sendLate?: { p99: number; max: number };
};

const FORM = 'application/x-www-form-urlencoded';

async function cannon(opts: autocannon.Options): Promise<Outcome> {
  const result = await autocannon({ ...opts, timeout: 10 });
  return {
    requests: result.requests.total,
    seconds: result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
  };
}

/** Runs `op` from `connections` workers for `duration` seconds; latencies per op. */
export async function loop(load: Load, op: (worker: number) => Promise<void>): Promise<Outcome> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const end = Date.now() + load.duration * 1000;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: load.connections }, async (_, worker) => {
      while (Date.now() < end) {
        const t0 = performance.now();
        try {
          await op(worker);
          latencies.push(performance.now() - t0);
        } catch (err) {
          errors += 1;
          firstError ??= (err as Error).message;
        }
      }
    }),
  );
  return { requests: latencies.length, seconds: (Date.now() - started) / 1000, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), errors, detail: firstError };
}

/**
 * Open-loop load at a fixed rate, as wrk2 makes it: request i is due at start + i / rate, whether
 * or not earlier ones have answered, and its latency counts from when it was due. A closed loop
 * (autocannon's rate limit lets each connection send back to back until the second's quota is
 * spent) measures a burst at full speed and then idle time, not a steady 70 %.
 */
export async function paced(load: Load & { rate: number }, op: () => Promise<void>): Promise<Outcome> {
  const latencies: number[] = [];
  // A stalled load generator sends late, and that lateness counts in the latencies as it should;
  // recorded apart so that a tail of its own making is not read as the server's.
  const late: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const inFlight = new Set<Promise<void>>();
  const start = performance.now();
  const total = Math.floor(load.rate * load.duration);
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * load.rate) + 1);
    for (; sent < due; sent += 1) {
      const scheduled = start + (sent / load.rate) * 1000;
      late.push(performance.now() - scheduled);
      const p: Promise<void> = op().then(
        () => void latencies.push(performance.now() - scheduled),
        (err: Error) => {
          errors += 1;
          firstError ??= err.message;
        },
      );
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(inFlight);
  const seconds = (performance.now() - start) / 1000;
  const sendLate = { p99: percentile(late, 0.99), max: late.at(-1) ?? 0 };
  return { requests: latencies.length, seconds, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), errors, detail: firstError, sendLate };
}

/** Signed-in users' tokens, one per connection (refresh chains must not share a token). */
async function userTokens(target: Ready, count: number): Promise<Tokens[]> {
  const tokens: Tokens[] = [];
  for (let i = 0; i < count; i += 4) {
    tokens.push(...(await Promise.all(Array.from({ length: Math.min(4, count - i) }, () => signInFlow(target)))));
  }
  return tokens;
}

async function refreshOnce(target: Ready, token: string): Promise<string> {
  const res = await fetch(`${target.issuer}/token`, {
    method: 'POST',
    headers: { authorization: basicAuth(target), 'content-type': FORM },
    body: `grant_type=refresh_token&refresh_token=${token}`,
  });
  if (res.status !== 200) throw new Error(`refresh ${res.status} ${await res.text()}`);
  return ((await res.json()) as Tokens).refresh_token;
}

async function clientCredentials(target: Ready) {
  const res = await fetch(`${target.issuer}/token`, { method: 'POST', headers: { authorization: basicAuth(target), 'content-type': FORM }, body: 'grant_type=client_credentials' });
  if (res.status !== 200) throw new Error(`client_credentials ${res.status}`);
  await res.arrayBuffer();
}

/**
 * One POST of a fixed form over a pool of keep-alive connections, through undici's dispatcher
 * interface: the response's bytes are collected and parsed once, with no body stream per response
 * (pool.request's cost the load generator about a tenth more CPU a request and a tail of its own:
 * at a steady 2,500 a second against a server that answers a fixed JSON body, p99 10–28 ms against
 * 6–7 ms, three alternating runs each on the twenty-eighth VM). Requests wait in the pool when
 * every connection is busy, and that wait counts in their latency, as it does for a client.
 */
function poster(target: Ready, path: string, body: string, connections: number, check: (json: Record<string, unknown>) => boolean) {
  const pool = new Pool(target.url, { connections });
  const url = new URL(path);
  const headers = { authorization: basicAuth(target), 'content-type': FORM };
  return () =>
    new Promise<void>((resolve, reject) => {
      let status = 0;
      const chunks: Buffer[] = [];
      pool.dispatch(
        { path: url.pathname, method: 'POST', headers, body },
        {
          // Its presence tells undici this handler uses the current interface (without it, the
          // pool asks for the older one's onConnect).
          onRequestStart() {},
          onResponseStart(_controller, statusCode) {
            status = statusCode;
          },
          onResponseData(_controller, chunk) {
            chunks.push(chunk);
          },
          onResponseEnd() {
            let json: Record<string, unknown> | undefined;
            try {
              json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
            } catch {
              // Not JSON: refused below with the status.
            }
            if (status === 200 && json && check(json)) resolve();
            else reject(new Error(`${path} ${status}`));
          },
          onResponseError(_controller, err) {
            reject(err);
          },
        },
      );
    });
}

type Scenario = {
  describe: string;
  run(target: Ready, load: Load): Promise<Outcome>;
  /** One request of the scenario over `connections` connections, for open-loop runs at a fixed rate. */
  request?(target: Ready, connections: number): Promise<() => Promise<void>>;
};

const JWT_GRANT = `grant_type=client_credentials&resource=${encodeURIComponent(RESOURCE.indicator)}&scope=read`;

export const SCENARIOS: Record<string, Scenario> = {
  discovery: {
    describe: 'GET discovery document',
    run: (t, load) => cannon({ url: `${t.issuer}/.well-known/openid-configuration`, ...loadOpts(load) }),
  },
  'cc-opaque': {
    describe: 'client_credentials, opaque token',
    run: (t, load) => cannon({ url: `${t.issuer}/token`, method: 'POST', headers: { authorization: basicAuth(t), 'content-type': FORM }, body: 'grant_type=client_credentials', ...loadOpts(load) }),
    request: async (t, connections) => poster(t, `${t.issuer}/token`, 'grant_type=client_credentials', connections, (json) => typeof json.access_token === 'string'),
  },
  'cc-jwt': {
    describe: 'client_credentials, ES256 JWT for an API',
    run: (t, load) => cannon({ url: `${t.issuer}/token`, method: 'POST', headers: { authorization: basicAuth(t), 'content-type': FORM }, body: JWT_GRANT, ...loadOpts(load) }),
    // A JWT has three dot-separated parts; an opaque token has none.
    request: async (t, connections) => poster(t, `${t.issuer}/token`, JWT_GRANT, connections, (json) => typeof json.access_token === 'string' && json.access_token.split('.').length === 3),
  },
  introspection: {
    async request(t, connections) {
      const [tokens] = await userTokens(t, 1);
      return poster(t, `${t.issuer}/token/introspection`, `token=${tokens!.access_token}`, connections, (json) => json.active === true);
    },
    describe: "introspection of a user's access token",
    async run(t, load) {
      const [tokens] = await userTokens(t, 1);
      return cannon({ url: `${t.issuer}/token/introspection`, method: 'POST', headers: { authorization: basicAuth(t), 'content-type': FORM }, body: `token=${tokens!.access_token}`, ...loadOpts(load) });
    },
  },
  userinfo: {
    describe: 'userinfo with a bearer token',
    async run(t, load) {
      const [tokens] = await userTokens(t, 1);
      return cannon({ url: `${t.issuer}/me`, headers: { authorization: `Bearer ${tokens!.access_token}` }, ...loadOpts(load) });
    },
  },
  refresh: {
    describe: 'refresh-token rotation (each token used once)',
    async run(t, load) {
      // autocannon resets per-connection context after each pass over `requests`, so tokens live in
      // a shared pool: a request takes one, its response puts the rotated successor back. Spares
      // cover requests built before the previous response is recorded.
      const pool = (await userTokens(t, load.connections * 2)).map((x) => x.refresh_token);
      return cannon({
        url: `${t.issuer}/token`,
        ...loadOpts(load),
        requests: [
          {
            method: 'POST',
            headers: { authorization: basicAuth(t), 'content-type': FORM },
            setupRequest: (req) => ({ ...req, body: `grant_type=refresh_token&refresh_token=${pool.shift()}` }),
            onResponse: (status, body) => {
              if (status === 200) pool.push((JSON.parse(body) as Tokens).refresh_token);
            },
          },
        ],
      });
    },
  },
  login: {
    describe: 'full code + PKCE flow: password login, consent, token (argon2id production cost)',
    run: (t, load) => loop(load, async () => void (await signInFlow(t))),
  },
  mix: {
    describe: 'logins : refreshes : client credentials = 1 : 8 : 8',
    async run(t, load) {
      const chains = (await userTokens(t, load.connections)).map((x) => x.refresh_token);
      let n = 0;
      return loop(load, async (worker) => {
        const slot = (n += 1) % 17;
        if (slot === 0) await signInFlow(t);
        else if (slot <= 8) chains[worker] = await refreshOnce(t, chains[worker]!);
        else await clientCredentials(t);
      });
    },
  },
};

function loadOpts(load: Load) {
  return { connections: load.connections, duration: load.duration };
}
