import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { startServerWithMail, type TestServer } from '../support/server.js';
import { PASSWORD, REDIRECT_URI, POST_LOGOUT_URI, authorizationRequest, relyingParty, seed, signIn } from '../support/oidc.js';
import { createApiClient } from '../support/api-client.js';
import { createUserAgent } from '../support/user-agent.js';
import { ERRORS } from '../../src/http/problem.js';
import { API_CLIENT_ID, MAGIC_LINK_GRANT } from '../../src/oidc/first-party-clients.js';

/**
 * "Validate every input at the edge; never answer 500 to anything a client can send", checked by
 * generated requests: every operation of the server's own OpenAPI document, every form the pages
 * render, and the OpenID provider's endpoints get a fixed set of hostile inputs (wrong types,
 * huge, NUL, half characters, deep nesting, broken encodings, duplicated and unknown fields).
 * Deterministic: the few random values come from a seeded generator. Each test collects every
 * offending request and reports them all at once. The last test races deletes of one resource,
 * which the generated requests (a few in flight at a time) first showed answering 500 on PostgreSQL.
 */

let server: TestServer;
let stopAll: () => Promise<void>;
let smtp: Awaited<ReturnType<typeof startServerWithMail>>['smtp'];
let fixtures: Awaited<ReturnType<typeof seed>>;
const api = createApiClient(() => server);

const STRONG = 'violet kettle orbit 42';
/** Ids the requests aim at: real throwaway resources, and doomed ones for DELETE. */
const ids = {} as {
  adminToken: string;
  admin: { id: string; email: string; username: string };
  victim: string;
  doomedUser: string;
  app: string;
  doomedApp: string;
  appConnection: string;
  doomedAppConnection: string;
  connection: string;
  doomedConnection: string;
  session: string;
  grant: string;
};

beforeAll(async () => {
  // Throttles lifted, so that requests reach the code behind them instead of a 429.
  ({ server, smtp, stop: stopAll } = await startServerWithMail({
    CONNECTION_SECRET_KEYS: randomBytes(32).toString('base64'),
    LOGIN_MAX_FAILURES_PER_IP: '100000',
    LOGIN_MAX_FAILURES_PER_ACCOUNT: '1000',
    EMAIL_MAX_PER_IP: '100000',
    EMAIL_MAX_PER_ADDRESS: '100000',
  }));
  fixtures = await seed(server);
  const admin = await api.makeUser({ isAdmin: true, isStaff: true });
  ids.admin = { id: admin.id, email: admin.email, username: admin.username };
  ids.adminToken = (await api.login(admin.username)).access_token;
  ids.victim = (await api.makeUser()).id;
  ids.doomedUser = (await api.makeUser()).id;
  ids.app = (await api.makeApp(ids.adminToken)).clientId;
  ids.doomedApp = (await api.makeApp(ids.adminToken)).clientId;
  const connection = (slug: string, path = '/api/connections') =>
    api.call('POST', path, ids.adminToken, { kind: 'oauth2', slug, name: 'Upstream', clientId: 'upstream-client', clientSecret: 's3cret', authorizationUrl: 'https://up.example/auth', tokenUrl: 'https://up.example/token', userinfoUrl: 'https://up.example/me' });
  for (const [key, slug, path] of [
    ['connection', 'fz-global', '/api/connections'],
    ['doomedConnection', 'fz-doomed', '/api/connections'],
    ['appConnection', 'fz-app', `/api/apps/${ids.app}/connections`],
    ['doomedAppConnection', 'fz-app-doomed', `/api/apps/${ids.app}/connections`],
  ] as const) {
    const res = await connection(slug, path);
    expect(res.status, await res.clone().text()).toBe(201);
    ids[key] = (await api.json(res)).id;
  }
  // A browser session and a grant of ada's, for the session and grant operations.
  await signIn(await relyingParty(server, fixtures.confidential));
  const list = async (what: string) => (await api.json(await api.call('GET', `/api/${what}?userId=${fixtures.user.id}`, ids.adminToken))).items as { id: string }[];
  ids.session = (await list('sessions'))[0]!.id;
  ids.grant = (await list('grants'))[0]!.id;
});
afterAll(async () => {
  agent.destroy();
  await stopAll?.();
});

// ---------------------------------------------------------------------------------------------
// Sending, and collecting what went wrong

type Req = { method: string; path: string; headers?: Record<string, string>; body?: string | Buffer; note?: string };
type Res = { status: number; headers: IncomingHttpHeaders; body: string };

const agent = new Agent({ keepAlive: true, maxSockets: 8 });

/** One request over node:http, so that the path goes out byte for byte (fetch would normalize it). */
function send(req: Req): Promise<Res> {
  const { hostname, port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    // Node's client sends no Content-Length for a DELETE body unless told: the body would be read as the next request.
    const length = req.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(req.body)) };
    const r = request({ host: hostname, port, method: req.method, path: req.path, headers: { ...req.headers, ...length }, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    r.setTimeout(15_000, () => r.destroy(new Error('no answer within 15 s')));
    r.on('error', reject);
    r.end(req.body);
  });
}

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s);
const describeReq = (req: Req) => {
  const body = req.body === undefined ? '' : ` body=${JSON.stringify(clip(req.body.toString(), 120))}`;
  return `${req.method} ${clip(req.path, 160)}${req.note ? ` [${req.note}]` : ''}${body}`;
};

/** What is wrong with an answer from /api that is an error: it must be a problem document. */
function problemShapeError(res: Res): string | undefined {
  // Node's HTTP parser answers an oversized request line itself, before any of Latch runs.
  if (res.status < 400 || res.status === 431) return undefined;
  const type = String(res.headers['content-type'] ?? '');
  if (!type.startsWith('application/problem+json')) return `error without a problem document (content-type ${type || 'none'})`;
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(res.body) as Record<string, unknown>;
  } catch {
    return 'problem document is not JSON';
  }
  if (typeof body.type !== 'string' || typeof body.title !== 'string' || body.status !== res.status || typeof body.code !== 'string' || !Object.hasOwn(ERRORS, body.code)) {
    return 'malformed problem document';
  }
  return undefined;
}

type Check = (res: Res, req: Req) => string | undefined;

/** Sends every request (a few at a time) and returns one line per offending answer. */
async function sendAll(requests: Req[], check: Check = () => undefined): Promise<{ failures: string[]; sent: number }> {
  const failures: string[] = [];
  let next = 0;
  async function worker() {
    while (next < requests.length) {
      const req = requests[next++]!;
      let problem: string | undefined;
      let res: Res | undefined;
      try {
        res = await send(req);
        problem = res.status >= 500 ? 'server error' : check(res, req);
      } catch (err) {
        problem = `no answer: ${(err as Error).message}`;
      }
      if (problem) failures.push(`${describeReq(req)} -> ${res?.status ?? '-'} ${problem}: ${clip(res?.body ?? '', 200)}`);
    }
  }
  await Promise.all(Array.from({ length: 6 }, worker));
  return { failures, sent: requests.length };
}

const counts: Record<string, number> = {};
afterAll(() => {
  // How much each test sent, for whoever reads the run's output.
  if (Object.keys(counts).length) console.info(`no-server-errors: requests sent ${JSON.stringify(counts)}`);
});

// ---------------------------------------------------------------------------------------------
// Hostile values

/** mulberry32: a small seeded PRNG, so that every run sends the same "random" values. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(0x1a7c4);
/** Printable ASCII that does not compress: over PostgreSQL's index entry limit (about 2.7 kB). */
const randomText = (length: number) => Array.from({ length }, () => String.fromCharCode(33 + Math.floor(random() * 94))).join('');
const RANDOM_3000 = randomText(3000);
const RANDOM_UNICODE = Array.from({ length: 200 }, () => String.fromCodePoint(0x80 + Math.floor(random() * 0x2ff00))).filter((c) => !/\p{Cs}/u.test(c)).join('');

const nested = (depth: number, leaf: unknown = 1): unknown => (depth === 0 ? leaf : { a: nested(depth - 1, leaf) });
const nestedArray = (depth: number): unknown => (depth === 0 ? [] : [nestedArray(depth - 1)]);

/** JSON values for every property: each type, and strings no one should store. */
const HOSTILE_JSON: unknown[] = [
  -1, 1.5, true, null, '', 'x', [], ['x'], {}, 'a'.repeat(10_000), RANDOM_3000, RANDOM_UNICODE, 'a\u0000b', 'x\ud800', '\u202e\ufeff\r\n', nested(40),
];
/** More for numbers, whose bounds and integer checks differ. */
const HOSTILE_NUMBERS: unknown[] = [0, 1e308, 2 ** 53 + 1, -1e308, '1'];
/** For the first property of a body only: they test the body's reading, the same for every property. */
const HOSTILE_JSON_ONCE: unknown[] = ['a'.repeat(60_000), 'a'.repeat(100_000), nestedArray(40), '\udfffx', '\ud83d\ude00', "' OR '1'='1' --", '%E0%A4%A', '__proto__'];
/** For nested properties and array items. */
const HOSTILE_JSON_SHORT: unknown[] = [1.5, null, {}, 'a'.repeat(10_000), RANDOM_3000, 'a\u0000b', 'x\ud800', nested(40)];

/** Raw bodies sent with a JSON content type. */
const RAW_BODIES: (string | Buffer)[] = [
  ' ', 'not json', '{"a":', 'null', '123', '"str"', '[]', `{"a":${'['.repeat(5000)}${']'.repeat(5000)}}`, `${'{"a":'.repeat(3000)}1${'}'.repeat(3000)}`,
  '\ufeff{}', '{"__proto__":{"isAdmin":true},"constructor":{"prototype":{"isAdmin":true}}}', '{"\\u0000":1}', '{"a":1e99999}',
  Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00]), Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]),
];

/** Raw (already encoded) values for a URL path segment. */
const HOSTILE_SEGMENTS = [
  'a'.repeat(10_000), encodeURIComponent(RANDOM_3000), '%E0%A4%A', '%00', '%', '%C0%AF', '%ED%A0%80', '%2F', '..', '%F0%9F%92%A9', '-1', '__proto__', '%0D%0Aset-cookie:x=1',
];

/** Raw (already encoded) values for a query or form field. */
const HOSTILE_PARAMS = [
  '', 'abc', '-1', '1.5', '1e309', '99999999999999999999', '0x10', '%00', '%E0%A4%A', '%ED%A0%80', '%FF%FE',
  'a'.repeat(10_000), encodeURIComponent(RANDOM_3000), '2024-13-45T00:00:00Z', '0000-01-01T00:00:00Z', '%7B%22a%22%3A1%7D',
];
const PARAM_SHAPES = (name: string) => [`${name}=1&${name}=2`, `${name}[]=1`, `${name}[a]=1`, name];

// ---------------------------------------------------------------------------------------------
// The OpenAPI document: one valid request per operation, then one change at a time

type Schema = {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  anyOf?: Schema[];
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  minItems?: number;
};
type Operation = {
  method: string;
  template: string;
  secured: boolean;
  /** The first operation of its tag (one guard per tag): it gets every kind of broken credential. */
  firstOfTag: boolean;
  pathParams: string[];
  queryParams: Record<string, Schema>;
  body?: Schema;
};

let counter = 0;
/** A valid value for a property, by its schema (and, for a few, its name); fresh for unique fields. */
function validValue(schema: Schema, name: string): unknown {
  const n = ++counter;
  if (schema.anyOf) return validValue(schema.anyOf.find((s) => s.type !== 'null') ?? schema.anyOf[0]!, name);
  if (schema.enum) return schema.enum[0];
  switch (schema.type) {
    case 'string': {
      if (/^(password|newPassword)$/.test(name)) return STRONG;
      if (name === 'currentPassword') return 'not the password';
      if (/^(token|refresh_token)$/.test(name)) return `tok${n}`.padEnd(32, 'k');
      if (name === 'scope') return 'openid';
      if (schema.format === 'email') return `fz${n}@example.com`;
      if (schema.format === 'uri') return `https://app.example/cb/${n}`;
      if (schema.format === 'date-time') return '2024-01-01T00:00:00Z';
      const text = `${name.toLowerCase().replace(/[^a-z0-9]/g, '')}${n}`;
      return text.padEnd(schema.minLength ?? 1, 'x').slice(0, schema.maxLength ?? 60);
    }
    case 'integer':
    case 'number':
      return schema.minimum ?? 1;
    case 'boolean':
      return false;
    case 'array':
      return Array.from({ length: Math.max(1, schema.minItems ?? 1) }, () => validValue(schema.items ?? { type: 'string' }, name));
    case 'object': {
      // Every property, but an optional password: hashing and rating one is the slowest step by far.
      const wanted = Object.entries(schema.properties ?? {}).filter(([k]) => schema.required?.includes(k) || !/password/i.test(k));
      return Object.fromEntries(wanted.map(([k, s]) => [k, validValue(s, k)]));
    }
    default:
      return 'x';
  }
}

function operationsOf(doc: { paths: Record<string, Record<string, Record<string, any>>> }): Operation[] {
  const ops: Operation[] = [];
  const tags = new Set<string>();
  for (const [template, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const params = (op.parameters ?? []) as { name: string; in: string; schema: Schema }[];
      const tag = String(op.tags?.[0]);
      const firstOfTag = !tags.has(tag);
      tags.add(tag);
      ops.push({
        method: method.toUpperCase(),
        template,
        secured: (op.security ?? []).length > 0,
        firstOfTag,
        pathParams: params.filter((p) => p.in === 'path').map((p) => p.name),
        queryParams: Object.fromEntries(params.filter((p) => p.in === 'query').map((p) => [p.name, p.schema])),
        body: op.requestBody?.content?.['application/json']?.schema,
      });
    }
  }
  return ops;
}

/** The real resource each path parameter names; DELETE aims at doomed ones. */
function pathParamValue(op: Operation, param: string): string {
  const del = op.method === 'DELETE';
  const [, , resource] = op.template.split('/');
  if (param === 'connectionId') return del ? ids.doomedAppConnection : ids.appConnection;
  switch (resource) {
    case 'users': return del ? ids.doomedUser : ids.victim;
    case 'apps': return del && op.template === '/api/apps/{id}' ? ids.doomedApp : ids.app;
    case 'connections': return del ? ids.doomedConnection : ids.connection;
    case 'sessions': return ids.session;
    case 'grants': return ids.grant;
    default: return `unknown${param}`; // /api/me/identities/{id}: ada has none
  }
}

/** A body that passes validation, so that one changed field reaches the code behind it. */
function baseBody(op: Operation): Record<string, unknown> {
  const body = validValue(op.body!, 'body') as Record<string, unknown>;
  // The admin's own profile: kept, so that no email change (which takes the password) stops it.
  if (op.template === '/api/me' && op.method !== 'DELETE') return { ...body, email: ids.admin.email, username: ids.admin.username, currentPassword: undefined };
  // The settings as they are: the minimum of each would throttle every later sign-in.
  if (op.template === '/api/settings') return { registrationOpen: true };
  if (op.template === '/api/auth/login') return { username: 'ada', password: 'not the password' };
  return body;
}

const pathOf = (op: Operation, replace: Record<string, string> = {}) =>
  op.template.replace(/\{(\w+)\}/g, (_, p: string) => replace[p] ?? encodeURIComponent(pathParamValue(op, p)));

/** Every request for one operation. */
function requestsFor(op: Operation): Req[] {
  const auth: Record<string, string> = op.secured ? { authorization: `Bearer ${ids.adminToken}` } : {};
  const json = { 'content-type': 'application/json', ...auth };
  const hasBody = op.body !== undefined;
  const takesBody = ['POST', 'PUT', 'PATCH'].includes(op.method) || (op.method === 'DELETE' && hasBody);
  const out: Req[] = [];
  const base = () => (hasBody ? JSON.stringify(baseBody(op)) : undefined);
  const req = (r: Partial<Req> & { note: string }): Req => ({ method: op.method, path: pathOf(op), headers: hasBody ? json : auth, body: base(), ...r });

  out.push(req({ note: 'valid' }));
  if (op.secured) {
    const broken = ['Bearer', `Bearer ${'x'.repeat(8000)}`, 'Bearer a b', 'Bearer %E0%A4%A', 'Basic Og==', `Bearer ${ids.adminToken}x`, `bearer\t${ids.adminToken}`, 'Bearer latch_%00'];
    for (const authorization of ['', 'Bearer x', ...(op.firstOfTag ? broken : [])]) {
      out.push(req({ note: authorization ? `authorization ${clip(authorization, 20)}` : 'no authorization', headers: { ...(hasBody ? { 'content-type': 'application/json' } : {}), ...(authorization ? { authorization } : {}) } }));
    }
  }
  for (const param of op.pathParams) {
    for (const segment of HOSTILE_SEGMENTS) out.push(req({ note: `path ${param}`, path: pathOf(op, { [param]: segment }) }));
  }
  const withQuery = (query: string, note: string) => req({ note, path: `${pathOf(op)}?${query}` });
  for (const name of Object.keys(op.queryParams)) {
    for (const value of HOSTILE_PARAMS) out.push(withQuery(`${name}=${value}`, `query ${name}`));
    for (const shape of PARAM_SHAPES(name)) out.push(withQuery(shape, `query ${name}`));
  }
  // Parameters no operation declares.
  for (const query of ['__proto__[isAdmin]=1&constructor[prototype][x]=1&x=1&x=2', '%00=1', `&&&==&${'a=1&'.repeat(2000)}b=2`]) {
    out.push(withQuery(query, 'undeclared query'));
  }
  if (!takesBody) return out;

  for (const body of RAW_BODIES) out.push(req({ note: 'raw body', body, headers: json }));
  for (const type of ['text/plain', 'application/json; charset=utf-16', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=zz']) {
    out.push(req({ note: `content-type ${type}`, headers: { ...auth, 'content-type': type } }));
  }
  out.push(req({ note: 'no content-type', headers: auth }));
  out.push(req({ note: 'unknown content-encoding', headers: { ...json, 'content-encoding': 'x-unknown' } }));
  out.push(req({ note: 'no body', headers: auth, body: undefined }));
  const form = (body: string, note: string) => req({ note, body, headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' } });
  const fieldNames = Object.keys(op.body?.properties ?? { a: {} });
  out.push(form(new URLSearchParams(Object.entries(hasBody ? baseBody(op) : {}).filter(([, v]) => v !== undefined).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])).toString(), 'form of the valid body'));
  out.push(form(fieldNames.map((k) => `${k}[]=1&${k}[]=2`).join('&'), 'form arrays'));
  out.push(form(fieldNames.map((k) => `${k}[a][b][c]=1`).join('&'), 'form objects'));
  out.push(form(fieldNames.map((k) => `${k}=%00`).join('&'), 'form NUL'));
  out.push(form(fieldNames.map((k) => `${k}=%E0%A4%A`).join('&'), 'form broken encoding'));
  out.push(form(`__proto__[isAdmin]=true&constructor[prototype][isAdmin]=true&${'a['.repeat(40)}${']'.repeat(40)}=1`, 'form prototype keys'));
  if (!hasBody) return out;

  // One property at a time: missing, or each hostile value; one level into objects and arrays.
  const valid = baseBody(op);
  const mutate = (path: string[], value: unknown, note: string) => {
    const body = structuredClone(baseBody(op)) as Record<string, any>;
    let target = body;
    for (const key of path.slice(0, -1)) target = target[key] = typeof target[key] === 'object' && target[key] !== null ? target[key] : {};
    if (value === undefined) delete target[path.at(-1)!];
    else target[path.at(-1)!] = value;
    out.push(req({ note, body: JSON.stringify(body) }));
  };
  for (const [i, [name, schema]] of Object.entries(op.body!.properties ?? {}).entries()) {
    const inner = schema.anyOf?.find((s) => s.type !== 'null') ?? schema;
    mutate([name], undefined, `without ${name}`);
    for (const value of [...HOSTILE_JSON, ...(i === 0 ? HOSTILE_JSON_ONCE : []), ...(inner.type === 'integer' || inner.type === 'number' ? HOSTILE_NUMBERS : [])]) {
      mutate([name], value, `${name} hostile`);
    }
    if (inner.type === 'array') for (const value of HOSTILE_JSON_SHORT) mutate([name, '0'], value, `${name}[0] hostile`);
    if (inner.type === 'object') {
      for (const sub of Object.keys(inner.properties ?? {})) for (const value of HOSTILE_JSON_SHORT) mutate([name, sub], value, `${name}.${sub} hostile`);
      mutate([name, 'unknown'], 'x', `${name}.unknown`);
    }
  }
  out.push(req({ note: 'unknown property', body: JSON.stringify({ ...valid, unknownProperty: 'x' }) }));
  out.push(req({ note: 'only unknown properties', body: JSON.stringify({ unknownProperty: 'x', another: [1] }) }));
  out.push(req({ note: 'many unknown properties', body: JSON.stringify(Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`k${i}`, i]))) }));
  return out;
}

describe('every /api operation of the OpenAPI document', () => {
  it('answers hostile requests with a 4xx problem document, never a 5xx', { timeout: 120_000 }, async () => {
    const doc = JSON.parse((await send({ method: 'GET', path: '/api/openapi.json' })).body);
    const ops = operationsOf(doc);
    expect(ops.length).toBeGreaterThan(40);
    // Every operation once, DELETEs last: what they remove is not aimed at by the others anyway.
    const ordered = [...ops.filter((o) => o.method !== 'DELETE'), ...ops.filter((o) => o.method === 'DELETE')];
    const settings = await api.json(await api.call('GET', '/api/settings', ids.adminToken));
    const requests = ordered.flatMap(requestsFor);
    // A path no operation has, under /api: a problem document too. And the routes outside the document.
    for (const path of ['/api/nope', '/api/users/a/b/c', '/api/', '/api/%E0%A4%A', '/api/users/%00/x', '/api/status', '/api/docs?x=%00', '/api/docs/..%2f..%2fpackage.json', '/api/docs/%E0%A4%A', '/api/openapi.json?a[]=1']) {
      requests.push({ method: 'GET', path, note: 'outside the document' });
    }
    for (const [path, headers] of [
      ['/api/status', { 'x-service-token': 'x'.repeat(5000) }], ['/metrics', { authorization: 'Bearer %00' }], ['/metrics', { authorization: `Bearer ${'x'.repeat(5000)}` }], ['/healthz?x=%00', {}], ['/readyz?x=%E0%A4%A', {}],
      ['/static/..%2f..%2fpackage.json', {}], ['/static/%00', {}], ['/static/%E0%A4%A', {}], ['/static/style.css', { 'if-none-match': 'x'.repeat(5000) }], ['/?%00', {}], ['/%E0%A4%A', {}], ['/nope', { accept: 'application/json' }],
    ] as const) {
      requests.push({ method: 'GET', path, headers, note: 'outside the document' });
    }
    // A request line longer than Node's header limit (16 kB) is refused by Node itself, with a 431.
    requests.push({ method: 'GET', path: `/api/users/${'a'.repeat(100_000)}`, headers: { authorization: `Bearer ${ids.adminToken}` }, note: 'huge path' });
    requests.push({ method: 'GET', path: `/api/users?search=${'a'.repeat(100_000)}`, headers: { authorization: `Bearer ${ids.adminToken}` }, note: 'huge query' });
    const { failures, sent } = await sendAll(requests, (res, req) => (req.path.startsWith('/api/') ? problemShapeError(res) : undefined));
    counts.api = sent;
    // Hostile booleans are valid settings (registration closed, say): put them back for the pages.
    expect((await api.call('PATCH', '/api/settings', ids.adminToken, settings)).status).toBe(200);
    expect(failures).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// The server-rendered forms

type Form = { action: string; fields: [string, string][]; cookie: () => Promise<string> };

const decodeEntities = (s: string) =>
  s.replace(/&(#\d+|amp|lt|gt|quot|#x[\da-f]+);/gi, (_, e: string) =>
    e[0] === '#' ? String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : Number(e.slice(1))) : ({ amp: '&', lt: '<', gt: '>', quot: '"' } as Record<string, string>)[e]!);

/** A value for a form field the page left empty, by the field's name. */
function formValue(name: string, type: string): string {
  const n = ++counter;
  if (name === 'email') return `form${n}@example.com`;
  if (/^(password|newPassword)$/.test(name)) return STRONG;
  if (/password/i.test(name)) return 'not the password';
  if (name === 'username') return `form${n}`;
  if (name === 'resources') return '';
  if (name === 'login') return 'ada';
  if (type === 'checkbox' || type === 'radio') return 'on';
  if (type === 'url' || /uri|url/i.test(name)) return `https://app.example/form/${n}`;
  if (type === 'number') return '60';
  return `value${n}`;
}

/** Every POST form of a page, with the values a person would send. */
function formsOf(html: string, cookie: () => Promise<string>): Form[] {
  return [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)].flatMap(([, attrs, inner]) => {
    if (!/method="post"/i.test(attrs!)) return [];
    const action = decodeEntities(/\baction="([^"]*)"/.exec(attrs!)?.[1] ?? '');
    const fields: [string, string][] = [];
    for (const [, tag, rest] of inner!.matchAll(/<(input|select|textarea|button)\b([^>]*)>/g)) {
      const name = /\bname="([^"]+)"/.exec(rest!)?.[1];
      if (!name) continue;
      const type = /\btype="([^"]+)"/.exec(rest!)?.[1] ?? (tag === 'select' ? 'select' : 'text');
      if (type === 'submit' && tag === 'input') continue;
      if (fields.some(([k]) => k === name) && type === 'checkbox') continue;
      let value = decodeEntities(/\bvalue="([^"]*)"/.exec(rest!)?.[1] ?? '');
      if (tag === 'select') value = decodeEntities(/<option[^>]*value="([^"]*)"/.exec(inner!.slice(inner!.indexOf(rest!)))?.[1] ?? '');
      fields.push([decodeEntities(name), value || formValue(name, type)]);
    }
    return [{ action, fields, cookie }];
  });
}

/** Raw (already encoded) values for one form field. */
const HOSTILE_FORM_VALUES = ['%00', 'a'.repeat(10_000), encodeURIComponent(RANDOM_3000), '%E0%A4%A', '%ED%A0%80'];

/** Every request for one form: each field missing, repeated, as an array or object, or hostile; then the whole body broken. */
function formRequests(form: Form, cookie: string): Req[] {
  const enc = (fields: [string, string][]) => fields.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  const headers = { cookie, 'content-type': 'application/x-www-form-urlencoded' };
  const post = (body: string, note: string, extra: Record<string, string> = {}): Req => ({ method: 'POST', path: form.action, headers: { ...headers, ...extra }, body, note });
  const out: Req[] = [];
  for (const [i, [name, value]] of form.fields.entries()) {
    const others = form.fields.filter((_, j) => j !== i);
    const key = encodeURIComponent(name);
    const rest = enc(others);
    out.push(post(rest, `without ${name}`));
    out.push(post(`${rest}&${key}=${encodeURIComponent(value)}&${key}=other`, `${name} twice`));
    out.push(post(`${rest}&${key}[]=1&${key}[]=2`, `${name}[]`));
    if (name === '_csrf') continue;
    for (const hostile of HOSTILE_FORM_VALUES) out.push(post(`${rest}&${key}=${hostile}`, `${name} hostile`));
  }
  const csrf = form.fields.find(([k]) => k === '_csrf')?.[1] ?? '';
  const valid = enc(form.fields);
  const [first] = form.fields.filter(([k]) => k !== '_csrf');
  if (first) out.push(post(`${valid}&${encodeURIComponent(first[0])}=${'a'.repeat(20_000)}`, 'over the size limit'));
  out.push(post(form.fields.map(([k, v]) => `${encodeURIComponent(k)}${k === '_csrf' ? '' : '[a][b]'}=${encodeURIComponent(v)}`).join('&'), 'every field an object'));
  out.push(post('', 'empty body'), post('garbage', 'no fields'), post('%', 'lone percent'), post('&&==&', 'separators only'));
  out.push(post(`_csrf=${encodeURIComponent(csrf)}&__proto__[x]=1&constructor[prototype][x]=1&${'a['.repeat(40)}${']'.repeat(40)}=1`, 'prototype keys'));
  out.push(post(`_csrf=${encodeURIComponent(csrf)}&${'a=1&'.repeat(3000)}b=2`, 'many fields'));
  out.push(post(JSON.stringify(Object.fromEntries(form.fields)), 'JSON body', { 'content-type': 'application/json' }));
  out.push(post(valid, 'text/plain', { 'content-type': 'text/plain' }));
  out.push(post(valid, 'garbled gzip', { 'content-encoding': 'gzip' }));
  out.push(post(valid, 'charset=utf-16', { 'content-type': 'application/x-www-form-urlencoded; charset=utf-16' }));
  out.push(post(valid, 'from another origin', { origin: 'https://evil.example' }));
  // Last: the form as filled in, which may delete or revoke what it names.
  out.push(post(valid, 'as filled in'));
  return out;
}

describe('the server-rendered forms', () => {
  it('answer malformed posts with a page, never a 5xx', { timeout: 120_000 }, async () => {
    const settings = await api.json(await api.call('GET', '/api/settings', ids.adminToken));
    const url = (path: string) => `${server.url}${path}`;
    // Emailed links, so that the token pages show their forms: for users of their own.
    const mailed = async (email: string, path: string) => {
      expect((await api.call('POST', path, undefined, { email })).status).toBe(202);
      return new URL((await smtp.waitFor(email)).link!);
    };
    const linkUser = await api.makeUser();
    const resetLink = await mailed(linkUser.email, '/api/auth/forgot-password');
    const magicLink = await mailed(linkUser.email, '/api/auth/magic-link');
    expect((await api.call('POST', '/api/auth/register', undefined, { email: 'unconfirmed@example.com', password: STRONG })).status).toBe(201);
    const verifyLink = new URL((await smtp.waitFor('unconfirmed@example.com')).link!);

    // An anonymous visitor in the middle of a sign-in, and an admin signed in to the console.
    const visitor = createUserAgent();
    const loginPage = await visitor.navigate((await authorizationRequest(await relyingParty(server, fixtures.confidential))).url);
    expect(loginPage.url).toMatch(/\/interaction\/[^/]+$/);
    const uid = new URL(loginPage.url).pathname.split('/')[2]!;
    const pageAdmin = await api.makeUser({ isAdmin: true, isStaff: true });
    const admin = createUserAgent();
    await admin.submit(await admin.navigate(url('/admin')), '/login', { login: pageAdmin.username, password: PASSWORD });
    // The admins' own sessions and grants are not revoked: later requests would only be refused.
    const own = new Set<string>();
    for (const userId of [pageAdmin.id, ids.admin.id]) {
      for (const what of ['sessions', 'grants']) for (const item of (await api.json(await api.call('GET', `/api/${what}?userId=${userId}`, ids.adminToken))).items) own.add(item.id);
    }
    expect(own.size).toBeGreaterThan(0);

    const cookieOf = (who: ReturnType<typeof createUserAgent>) => () => who.jar.getCookieString(server.url);
    const forms: Form[] = [];
    const pages: [ReturnType<typeof createUserAgent>, string][] = [
      [visitor, '/register'], [visitor, '/forgot-password'], [visitor, resetLink.pathname + resetLink.search], [visitor, verifyLink.pathname + verifyLink.search],
      [visitor, magicLink.pathname + magicLink.search], [visitor, `/interaction/${uid}`],
      [admin, '/account'], [admin, '/admin'], [admin, '/admin/users'], [admin, `/admin/users/${ids.victim}`], [admin, '/admin/apps'], [admin, `/admin/apps/${ids.app}`],
      [admin, '/admin/connections'], [admin, `/admin/connections/${ids.connection}`], [admin, '/admin/sessions'], [admin, '/admin/settings'],
    ];
    for (const [who, path] of pages) {
      const page = await who.navigate(url(path));
      expect(page.status, `${path}: ${page.html.slice(0, 300)}`).toBe(200);
      forms.push(...formsOf(page.html, cookieOf(who)));
    }
    const csrfOf = async (who: ReturnType<typeof createUserAgent>, path: string) => /name="_csrf" value="([^"]+)"/.exec((await who.navigate(url(path))).html)![1]!;
    const visitorCsrf = await csrfOf(visitor, '/register');
    const adminCsrf = await csrfOf(admin, '/admin/settings');
    // Forms no page above shows (no pending link, nothing to consent to), and ids that do not exist.
    for (const action of ['/link-account', '/link-account/email', '/link-account/cancel', `/interaction/${uid}/confirm`, `/interaction/${uid}/connection/nope`, `/interaction/${'u'.repeat(5000)}/login`, '/interaction/%E0%A4%A/login']) {
      forms.push({ action, fields: [['_csrf', visitorCsrf], ['password', 'x'], ['email', 'x@example.com']], cookie: cookieOf(visitor) });
    }
    for (const action of ['/account/identities/nope/remove', '/admin/sessions/nope/revoke', '/admin/grants/nope/revoke', '/admin/users/nope', '/admin/users/%00/delete', `/admin/apps/${'a'.repeat(5000)}`, '/admin/connections/%E0%A4%A']) {
      forms.push({ action, fields: [['_csrf', adminCsrf], ['confirm', 'on'], ['name', 'x']], cookie: cookieOf(admin) });
    }
    // Local actions only (/o has its own test), one form per action, and what cannot be undone last.
    const seen = new Set<string>();
    const wanted = forms.filter((f) => f.action.startsWith('/') && !f.action.startsWith('/o/') && ![...own].some((id) => f.action.includes(id)) && !seen.has(f.action) && seen.add(f.action));
    const final = (f: Form) => /\/(delete|remove|revoke|active|abort|secret|api-keys)$|^\/admin\/settings$/.test(f.action);
    const ordered = [...wanted.filter((f) => !final(f)), ...wanted.filter(final)];
    expect(ordered.length).toBeGreaterThan(30);

    const requests: Req[] = [];
    for (const form of ordered) requests.push(...formRequests(form, await form.cookie()));
    // The pages' own query strings.
    const queries: Record<string, string[]> = {
      '/reset-password': ['token'], '/verify-email': ['token'], '/magic-link': ['token'], '/account/login': ['next', 'prompt'], '/account/callback': ['state', 'error'],
      '/admin/users': ['search', 'page'], '/admin/audit': ['user', 'event', 'from', 'to', 'page'], '/admin/sessions': ['notice'], '/callback/fz-global': ['code', 'state', 'error'],
    };
    const adminCookie = await admin.jar.getCookieString(server.url);
    for (const [path, params] of Object.entries(queries)) {
      for (const param of params) for (const value of HOSTILE_PARAMS) requests.push({ method: 'GET', path: `${path}?${param}=${value}`, headers: { cookie: adminCookie }, note: 'page query' });
    }
    // Each cookie the pages set, broken or replaced (signed ones then fail their signature), and odd headers.
    const resume = await authorizationRequest(await relyingParty(server, fixtures.confidential));
    const hostileCookies = ['', '%E0%A4%A', '%00', 'a'.repeat(5000), randomText(200).replace(/[;,\s]/g, 'x'), 'e30.e30.x'];
    for (const [who, path] of [[admin, '/account'], [admin, '/admin/users'], [visitor, `/interaction/${uid}`], [visitor, new URL(resume.url).pathname + new URL(resume.url).search]] as const) {
      const cookies = await who.jar.getCookies(url(path));
      for (const cookie of cookies) {
        for (const value of hostileCookies) {
          const header = cookies.map((c) => `${c.key}=${c.key === cookie.key ? value : c.value}`).join('; ');
          requests.push({ method: 'GET', path, headers: { cookie: header }, note: `cookie ${cookie.key}` });
        }
      }
      const cookie = cookies.map((c) => `${c.key}=${c.value}`).join('; ');
      for (const headers of [
        { accept: 'application/json;q=x, */*;q=-1' }, { accept: 'x'.repeat(5000) }, { 'accept-language': `${'en-'.repeat(1000)}x;q=0.5` }, { 'accept-encoding': 'x;q=1, gzip;q=abc' },
        { 'x-forwarded-for': '%00, 999.1.1.1' }, { 'x-forwarded-proto': 'gopher' }, { origin: 'null' }, { 'if-none-match': '*' }, { range: 'bytes=-1-99999999999' }, { cookie: `${cookie}; ${'k=v; '.repeat(500)}` },
      ] as Record<string, string>[]) {
        requests.push({ method: 'GET', path, headers: { cookie, ...headers }, note: `header ${Object.keys(headers)[0]}` });
      }
    }
    const { failures, sent } = await sendAll(requests);
    counts.pages = sent;
    expect((await api.call('PATCH', '/api/settings', ids.adminToken, settings)).status).toBe(200);
    expect(failures).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// The OpenID provider (/o)

/** Raw (already encoded) values for one protocol parameter. */
const HOSTILE_OAUTH_VALUES = ['', 'x', '%00', '%E0%A4%A', '%ED%A0%80', 'a'.repeat(10_000), 'a'.repeat(100_000), encodeURIComponent(RANDOM_3000), '%7B', '%7B%22a%22%3A1%7D', '-1', '1e309', 'http%3A%2F%2F%5B%3A%3A1', encodeURIComponent(RANDOM_UNICODE)];

describe('the OpenID provider endpoints', () => {
  it('answer malformed protocol requests with an OAuth error or a page, never a 5xx', { timeout: 120_000 }, async () => {
    const discovery = JSON.parse((await send({ method: 'GET', path: '/o/.well-known/openid-configuration' })).body) as Record<string, string>;
    const local = (endpoint: string) => new URL(endpoint).pathname;
    const { confidential } = fixtures;
    const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
    const clientAuth = { authorization: basic(confidential.clientId, confidential.clientSecret!) };
    const formType = { 'content-type': 'application/x-www-form-urlencoded' };
    const enc = (params: Record<string, string>) => Object.entries(params).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
    const requests: Req[] = [];

    /**
     * A valid request, then each of its parameters missing, repeated, as an array or hostile, and each
     * optional one in `extra` added, plausible or hostile; sent as a form (POST) or a query (GET).
     */
    function mutations(method: 'GET' | 'POST', path: string, params: Record<string, string>, headers: Record<string, string> = {}, extra: Record<string, string> = {}) {
      const build = (encoded: string, note: string): Req =>
        method === 'GET' ? { method, path: `${path}?${encoded}`, headers, note } : { method, path, headers: { ...formType, ...headers }, body: encoded, note };
      requests.push(build(enc(params), 'valid'));
      for (const name of Object.keys(params)) {
        const { [name]: value, ...others } = params;
        const rest = enc(others);
        const key = encodeURIComponent(name);
        requests.push(build(rest, `without ${name}`), build(`${rest}&${key}=${encodeURIComponent(value!)}&${key}=x`, `${name} twice`), build(`${rest}&${key}[]=x`, `${name}[]`));
        for (const hostile of HOSTILE_OAUTH_VALUES) requests.push(build(`${rest}&${key}=${hostile}`, `${name} hostile`));
      }
      const all = enc(params);
      for (const [name, value] of Object.entries(extra)) {
        const key = encodeURIComponent(name);
        requests.push(build(`${all}&${key}=${encodeURIComponent(value)}`, `with ${name}`));
        for (const hostile of HOSTILE_OAUTH_VALUES) requests.push(build(`${all}&${key}=${hostile}`, `${name} hostile`));
      }
    }

    // The token endpoint: every grant Latch takes, from the right kind of client.
    const token = local(discovery.token_endpoint!);
    mutations('POST', token, { grant_type: 'client_credentials', scope: 'openid', resource: 'https://api.example/' }, clientAuth);
    mutations('POST', token, { grant_type: 'authorization_code', code: 'x'.repeat(43), redirect_uri: REDIRECT_URI, code_verifier: 'v'.repeat(43) }, clientAuth);
    mutations('POST', token, { grant_type: 'refresh_token', refresh_token: 'x'.repeat(43), scope: 'openid' }, clientAuth);
    mutations('POST', token, { grant_type: 'password', client_id: API_CLIENT_ID, username: 'ada', password: 'not the password', scope: 'openid' });
    mutations('POST', token, { grant_type: MAGIC_LINK_GRANT, client_id: API_CLIENT_ID, token: 'x'.repeat(43) });
    mutations('POST', token, { grant_type: 'client_credentials', client_id: confidential.clientId, client_secret: confidential.clientSecret! });
    mutations('POST', token, { grant_type: 'client_credentials', client_id: confidential.clientId, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: 'e30.e30.x' });
    // Broken client authentication.
    for (const authorization of [
      'Basic', 'Basic !!!', 'Basic Og==', 'Bearer x', basic('%E0%A4%A', 'x'), basic(confidential.clientId, '%E0%A4%A'), basic('a%00b', 'x'), basic('\u0000', '\u0000'),
      basic(confidential.clientId, 'x'.repeat(10_000)), basic('x'.repeat(5000), 'x'), `Basic ${Buffer.from(confidential.clientId).toString('base64')}`, `${clientAuth.authorization}garbage`, basic(encodeURIComponent(RANDOM_3000), 'x'),
    ]) {
      requests.push({ method: 'POST', path: token, headers: { ...formType, authorization }, body: 'grant_type=client_credentials', note: `authorization ${clip(authorization, 24)}` });
    }
    for (const type of ['application/json', 'text/plain', 'multipart/form-data; boundary=zz', 'application/x-www-form-urlencoded; charset=utf-16', 'application/x-www-form-urlencoded; charset=x-unknown']) {
      requests.push({ method: 'POST', path: token, headers: { ...clientAuth, 'content-type': type }, body: '{"grant_type":"client_credentials"}', note: type });
    }
    requests.push({ method: 'POST', path: token, headers: { ...clientAuth, ...formType, 'content-encoding': 'gzip' }, body: 'grant_type=client_credentials', note: 'garbled gzip' });
    requests.push({ method: 'POST', path: token, headers: { ...clientAuth, ...formType }, body: `grant_type=client_credentials&${'a=1&'.repeat(3000)}`, note: 'many fields' });

    // Introspection and revocation (confidential clients), userinfo (bearer tokens).
    for (const endpoint of [discovery.introspection_endpoint!, discovery.revocation_endpoint!]) {
      mutations('POST', local(endpoint), { token: 'x'.repeat(43), token_type_hint: 'access_token' }, clientAuth);
      mutations('POST', local(endpoint), { token: 'x'.repeat(43), client_id: confidential.clientId, client_secret: confidential.clientSecret! });
    }
    const userinfo = local(discovery.userinfo_endpoint!);
    for (const authorization of ['Bearer', 'Bearer x', `Bearer ${'x'.repeat(8000)}`, 'Bearer %00', 'Bearer e30.e30.x', 'Basic Og==', `Bearer ${ids.adminToken}`]) {
      requests.push({ method: 'GET', path: userinfo, headers: { authorization }, note: 'userinfo' }, { method: 'POST', path: userinfo, headers: { authorization, ...formType }, body: '', note: 'userinfo' });
    }
    mutations('GET', userinfo, { access_token: 'x'.repeat(43) });
    mutations('POST', userinfo, { access_token: 'x'.repeat(43) });

    // The authorization endpoint, pushed requests, and logout (the provider takes GET only at the first and last).
    const authParams = { client_id: confidential.clientId, response_type: 'code', redirect_uri: REDIRECT_URI, scope: 'openid profile', state: 'st', nonce: 'no', code_challenge: 'c'.repeat(43), code_challenge_method: 'S256' };
    const authExtra = {
      prompt: 'login', max_age: '60', claims: '{"userinfo":{"email":null}}', login_hint: 'ada', ui_locales: 'en', acr_values: 'x', response_mode: 'query',
      resource: 'https://api.example/', id_token_hint: 'e30.e30.x', request: 'e30.e30.', request_uri: 'urn:x', display: 'page', claims_locales: 'en', registration: '{}',
    };
    const auth = local(discovery.authorization_endpoint!);
    mutations('GET', auth, authParams, {}, authExtra);
    mutations('POST', local(discovery.pushed_authorization_request_endpoint!), { ...authParams, client_id: confidential.clientId }, clientAuth, authExtra);
    const endSession = local(discovery.end_session_endpoint!);
    mutations('GET', endSession, { post_logout_redirect_uri: POST_LOGOUT_URI, state: 'st', client_id: confidential.clientId }, {}, { id_token_hint: 'e30.e30.x', ui_locales: 'en', logout_hint: 'ada' });
    mutations('POST', `${endSession}/confirm`, { xsrf: 'x'.repeat(32), logout: 'yes' });

    // Paths and methods the provider does not have.
    for (const [method, path] of [
      ['GET', token], ['PUT', token], ['DELETE', auth], ['POST', auth], ['POST', endSession], ['GET', '/o/nope'], ['GET', '/o/token/x'], ['GET', '/o/auth/%E0%A4%A'], ['GET', '/o/%00'], ['GET', `/o/${'a'.repeat(10_000)}`],
      ['GET', '/o/jwks?x=%00'], ['GET', '/o/jwks?x=%E0%A4%A'], ['GET', '/o/.well-known/openid-configuration?a[]=1&a[]=2'], ['GET', `${endSession}/success?state=%00`], ['POST', '/o/reg'], ['GET', '/o/session/end/confirm'],
    ] as const) {
      requests.push({ method, path, note: 'no such endpoint' });
    }
    const { failures, sent } = await sendAll(requests);
    counts.oidc = sent;
    expect(failures).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Requests at once

describe('one resource deleted by several requests at once', () => {
  it('is deleted by one of them; the others get the 404 a later request gets', async () => {
    const resources = {
      user: async () => `/api/users/${(await api.makeUser()).id}`,
      app: async () => `/api/apps/${(await api.makeApp(ids.adminToken)).clientId}`,
      connection: async () => {
        const res = await api.call('POST', '/api/connections', ids.adminToken, { kind: 'oidc', slug: api.unique('race-').toLowerCase(), name: 'Race', clientId: 'c', issuer: 'https://up.example' });
        return `/api/connections/${(await api.json(res)).id}`;
      },
    };
    const failures: string[] = [];
    const codeOf = (res: Res) => (problemShapeError(res) ? `malformed: ${clip(res.body, 120)}` : (JSON.parse(res.body) as { code: string }).code);
    for (const [kind, make] of Object.entries(resources)) {
      // Several rounds: each is a race, so one round may happen to run them one after another.
      for (let round = 0; round < 3; round++) {
        const del = (path: string) => send({ method: 'DELETE', path, headers: { authorization: `Bearer ${ids.adminToken}` } });
        const path = await make();
        const answers = await Promise.all(Array.from({ length: 6 }, () => del(path)));
        const later = codeOf(await del(path));
        const statuses = answers.map((a) => a.status).sort();
        const codes = answers.filter((a) => a.status !== 204).map(codeOf);
        if (statuses[0] !== 204 || statuses[1] === 204 || codes.some((c) => c !== later)) failures.push(`${kind}: ${statuses.join(' ')}; ${codes.join(' ')}; later ${later}`);
      }
    }
    counts.race = 3 * 7 * Object.keys(resources).length;
    expect(failures).toEqual([]);
  });
});
