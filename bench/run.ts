// npm run bench -- [options] (see USAGE, or --help)
// Starts each target on loopback in its own process, runs every scenario against every target in
// turn (interleaved), and prints requests/s, requests per server CPU-second, how busy the server's
// core and the load generator's core were, p50/p99, errors, server RSS, GC pauses, how late the
// server's event loop and the load generator ran, and the ratio of each Latch target to the
// oidc-provider in-memory baseline; for sign-ins also each target's CPU a sign-in and its hash's.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { optionsWithContextFrame } from '../src/context-frame.js';
import type { Ready } from './fixtures.js';
import { signInFlow } from './flow.js';
import { SCENARIOS, paced, type Outcome } from './scenarios.js';
import { commandLine, listOf } from './command-line.js';

const SCENARIO_NAMES = Object.keys(SCENARIOS) as [string, ...string[]];
const USAGE = `npm run bench -- [options]
  --scenario a,b            scenarios to run (${SCENARIO_NAMES.join(',')}); all by default
  --targets a,b             sqlite,postgres,baseline (the default: all three)
  --duration 10             seconds of each measured run
  --warmup 2                seconds of each unmeasured run before a scenario's rounds
  --login-warmup 120        seconds of sign-ins each target gets once, before the first that signs in
  --rounds 1                runs of every scenario against each target in turn (medians printed)
  --connections 32          connections of the full-load runs
  --login-connections 8     clients signing in at once
  --no-latency-check        skip the runs at a share of the peak rate
  --latency-load 0.7        that share
  --latency-connections 128 connections those runs send over
  --soak minutes            run the 1:8:8 mix this long per Latch target instead, reporting growth
  --profile dir             write each measured run's server CPU profile there
  --help                    this text`;

const OPTIONS = {
  scenario: { type: 'string', default: SCENARIO_NAMES.join(',') },
  targets: { type: 'string', default: 'sqlite,postgres,baseline' },
  duration: { type: 'string', default: '10' },
  warmup: { type: 'string', default: '2' },
  // Seconds of sign-ins each target gets once, before the first run that signs in (login, mix,
  // and the @70% runs' bursts). A sign-in's code runs a few dozen times a second, so V8 takes
  // minutes to optimise all of it. Against its hash (whose cost does not change), a sign-in in a
  // new server's first 12 seconds took Latch's event loop 27-37 % more CPU, and its whole process
  // 18-25 % more, than after 150 seconds of sign-ins (the ceiling's 66-70 % and 23-26 %); after 60
  // seconds, still 5-17 % and 2-11 % more.
  'login-warmup': { type: 'string', default: '120' },
  // Each scenario runs this many times against every target in turn; the table shows medians
  // (for the latency runs at 70 %, the round with the median p99, and the range).
  rounds: { type: 'string', default: '1' },
  connections: { type: 'string', default: '32' },
  'login-connections': { type: 'string', default: '8' },
  'latency-check': { type: 'boolean', default: true },
  // The latency runs' rate as a share of each target's measured peak.
  'latency-load': { type: 'string', default: '0.7' },
  // Connections the latency runs send over. Requests are sent on time whatever the answers, so
  // they need enough connections for the server's latency times the rate: with too few they
  // queue in the load generator instead of the server (32 connections at 3,800 requests/s leave
  // 8.4 ms each, and PostgreSQL grants take about 5).
  'latency-connections': { type: 'string', default: '128' },
  // Minutes of the login/refresh/client-credentials mix per Latch target, reporting growth.
  soak: { type: 'string' },
  // A folder: each measured run's server CPU profile (steady state only) is written there.
  profile: { type: 'string' },
} as const;

const opts = commandLine(
  USAGE,
  OPTIONS,
  z.object({
    scenario: listOf(SCENARIO_NAMES),
    targets: listOf(['sqlite', 'postgres', 'baseline']),
    duration: z.coerce.number().positive(),
    warmup: z.coerce.number().min(0),
    'login-warmup': z.coerce.number().min(0),
    rounds: z.coerce.number().int().min(1),
    connections: z.coerce.number().int().min(1),
    'login-connections': z.coerce.number().int().min(1),
    'latency-check': z.boolean(),
    'latency-load': z.coerce.number().gt(0).max(1),
    'latency-connections': z.coerce.number().int().min(1),
    soak: z.coerce.number().positive().optional(),
    profile: z.string().min(1).optional(),
  }),
);

type Target = { name: string; ready: Ready; child: ChildProcess; startMs: number; idleRssMb: number; opsPerLogin: number };
const CLK_TCK = 100;
/** The closed-loop run just before each paced one, whose rate sets the paced one's. */
const PEAK_AGAIN_SECONDS = 3;
const pinned = cpus().length >= 2;

// Server on core 0, load generator (this process) on core 1, so they do not compete. PostgreSQL's
// backends for a target's database join the load generator (see databaseBackends in server.ts).
if (pinned) execFileSync('taskset', ['-cp', '1', String(process.pid)], { stdio: 'ignore' });

/** A database backend joins the load generator; one that has ended meanwhile is left alone. */
function moveToLoadCore(pid: number) {
  try {
    execFileSync('taskset', ['-cp', '1', String(pid)], { stdio: 'ignore' });
  } catch {
    // The connection closed between the listing and now.
  }
}

/**
 * The machine's own stalls: a thread spinning alone on the server's core for `seconds`, counting
 * the moments it did not run (longer than 0.5 ms). On a VM the host takes the core away now and
 * then; a server on that core stops as long, and no change to the server can make up for it.
 */
function machineStalls(seconds: number) {
  const probe = `let prev = performance.now(); const end = prev + ${seconds * 1000}; const gaps = [];
    for (let t = prev; t < end; prev = t) { t = performance.now(); if (t - prev > 0.5) gaps.push(t - prev); }
    process.stdout.write(JSON.stringify(gaps));`;
  const gaps = JSON.parse(execFileSync(pinned ? 'taskset' : process.execPath, [...(pinned ? ['-c', '0', process.execPath] : []), '-e', probe], { encoding: 'utf8' })) as number[];
  return { lostMs: gaps.reduce((sum, g) => sum + g, 0), longestMs: Math.max(0, ...gaps) };
}

/** A process's CPU time so far, all its threads, ended ones too; or, given `tid`, that thread's. */
function cpuSeconds(pid: number, tid?: number) {
  const fields = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}
/** A core's busy and total time so far, in clock ticks (from /proc/stat). */
function coreTicks(core: number) {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${core} `));
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line!.split(/\s+/).slice(1, 9).map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq! + steal!;
  return { busy, total: busy + idle! + iowait! };
}
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

function ask(child: ChildProcess, type: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const onMessage = (msg: { type: string }) => {
      if (msg.type !== type) return;
      child.off('message', onMessage);
      resolve(msg as Record<string, unknown>);
    };
    child.on('message', onMessage);
    child.send({ type });
  });
}

async function startTarget(name: string): Promise<Target> {
  const started = performance.now();
  const command = pinned ? 'taskset' : process.execPath;
  // Every target runs as `npm start` runs Latch: on Node 22 with AsyncContextFrame (the ceiling too,
  // so that the ratio compares the servers, not two runtimes).
  const contextFrame = optionsWithContextFrame({ version: process.version, execArgv: [], nodeOptions: process.env.NODE_OPTIONS }) ?? [];
  const args = [...(pinned ? ['-c', '0', process.execPath] : []), ...contextFrame, '--import', 'tsx', 'bench/server.ts', name];
  const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? '4' } });
  const ready = await new Promise<Ready>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
    child.on('message', (msg: { type: string; ready?: Ready }) => msg.type === 'ready' && resolve(msg.ready!));
  });
  const startMs = performance.now() - started;
  await new Promise((r) => setTimeout(r, 1000));
  const idleRssMb = rssMb(ready.pid);
  // Storage operations of one complete sign-in (authorize, login, consent, token).
  await signInFlow(ready);
  const before = (await ask(child, 'counters')).storage as number;
  await signInFlow(ready);
  const opsPerLogin = ((await ask(child, 'counters')).storage as number) - before;
  return { name, ready, child, startMs, idleRssMb, opsPerLogin };
}

/**
 * Sign-ins for `load.duration` seconds from a process of their own (bench/login-burst.ts) on the
 * load generator's core, at `nice` 10 so that the paced sender and PostgreSQL's backends, which
 * share that core, come first (at the same priority it made the sender up to 47 ms late). Returns
 * once the process is loaded; `done` settles with the sign-ins' outcome.
 */
async function loginBurst(ready: Ready, load: { duration: number; connections: number }) {
  const args = ['-n', '10', ...(pinned ? ['taskset', '-c', '1'] : []), process.execPath, '--import', 'tsx', 'bench/login-burst.ts'];
  const child = spawn('nice', args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const reply = (type: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`the sign-in burst exited with ${code}`));
      child.once('exit', onExit);
      child.on('message', (msg: { type: string }) => {
        if (msg.type !== type) return;
        child.off('exit', onExit);
        resolve(msg);
      });
    });
  await reply('ready');
  const done = reply('done');
  child.send({ type: 'go', ready, load });
  return { done: done.then((msg) => msg.outcome as Outcome) };
}

type Row = {
  scenario: string;
  target: string;
  rps: number;
  perCpu: number;
  /** The server's CPU time over the run's wall time: how busy its core was. */
  busy: number;
  /** How busy the load generator's core was (it also runs PostgreSQL's backends): near 100 %, the
   * run measured the load generator or the database, not the server. */
  loadBusy?: number;
  /** The load generator's own share of that core (this process's CPU time over wall time). */
  generatorBusy: number;
  p50: number;
  p99: number;
  /** p99 of the responses' time inside the server (from request parsed to response written). */
  serverP99: number;
  errors: number;
  rss: number;
  /** The server's garbage-collection pauses: share of the run's wall time, and the longest. */
  gcShare: number;
  gcMaxMs: number;
  /** How late the server's event loop ran its timers: p99 and longest, ms. */
  loopP99Ms: number;
  loopMaxMs: number;
  /** Open-loop runs: how late the load generator sent (its own stalls), p99 and longest, ms. */
  sendLate?: { p99: number; max: number };
  note?: string;
  /** Over several rounds: the lowest and highest req/s, and the median of each round's ratio. */
  range?: [number, number];
  /** A paced run: the peak req/s measured just before it, which it ran at a share of. */
  peak?: number;
  /** Over several rounds of a latency run: the lowest and highest p99. */
  p99Range?: [number, number];
  ratio?: number;
  /** Sign-ins: the server's CPU per sign-in, its event loop's (the main thread), and its password
   * hash's, as the threads that computed the hashes counted it (unknown with argon2's prebuilt
   * binding), ms. */
  signIn?: { totalMs: number; loopMs: number; hashMs?: number };
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

/** One row per target from several interleaved rounds: the median round by req/s. */
function medianRows(rounds: Row[][]): Row[] {
  return rounds[0]!.map((_, t) => {
    const runs = rounds.map((round) => round[t]!);
    const rps = runs.map((r) => r.rps);
    const mid = runs.find((r) => r.rps === median(rps))!;
    const base = rounds.map((round) => round.find((r) => r.target === 'baseline'));
    const ratios = base.every(Boolean) && mid.target !== 'baseline' ? runs.map((r, i) => r.rps / base[i]!.rps) : undefined;
    return { ...mid, errors: runs.reduce((sum, r) => sum + r.errors, 0), note: runs.find((r) => r.note)?.note, range: [Math.min(...rps), Math.max(...rps)], ratio: ratios && median(ratios) };
  });
}

/** One row per latency run from several rounds: the round with the median p99, and the p99 range. */
function medianP99Rows(rounds: Row[][]): Row[] {
  return rounds[0]!.map((_, i) => {
    const runs = rounds.map((round) => round[i]!);
    const p99s = runs.map((r) => r.p99);
    const mid = runs.find((r) => r.p99 === median(p99s))!;
    return { ...mid, errors: runs.reduce((sum, r) => sum + r.errors, 0), note: runs.find((r) => r.note)?.note, p99Range: [Math.min(...p99s), Math.max(...p99s)] };
  });
}

async function measure(target: Target, scenario: string, run: () => Promise<Outcome>): Promise<Row> {
  if (opts.profile) await ask(target.child, 'profile-start');
  if (pinned) for (const pid of (await ask(target.child, 'backends')).pids as number[]) moveToLoadCore(pid);
  await ask(target.child, 'pauses');
  const hash0 = (await ask(target.child, 'counters')).hashCpuSeconds as number | undefined;
  const loop0 = cpuSeconds(target.ready.pid, target.ready.pid);
  const cpu0 = cpuSeconds(target.ready.pid);
  const load0 = pinned ? coreTicks(1) : undefined;
  const generator0 = process.cpuUsage();
  const out = await run();
  const generator = process.cpuUsage(generator0);
  const cpu = cpuSeconds(target.ready.pid) - cpu0;
  const loop = cpuSeconds(target.ready.pid, target.ready.pid) - loop0;
  const hash1 = (await ask(target.child, 'counters')).hashCpuSeconds as number | undefined;
  const perSignIn = (seconds: number) => (seconds * 1000) / out.requests;
  const signIn =
    scenario === 'login' && out.requests > 0
      ? { totalMs: perSignIn(cpu), loopMs: perSignIn(loop), hashMs: hash0 === undefined || hash1 === undefined ? undefined : perSignIn(hash1 - hash0) }
      : undefined;
  const load1 = pinned ? coreTicks(1) : undefined;
  const pauses = (await ask(target.child, 'pauses')) as { totalMs: number; maxMs: number; loopP99Ms: number; loopMaxMs: number; serverP99Ms: number };
  if (opts.profile) {
    const { profile } = await ask(target.child, 'profile-stop');
    const file = join(opts.profile, `${scenario}-${target.name}.cpuprofile`);
    mkdirSync(opts.profile, { recursive: true });
    writeFileSync(file, JSON.stringify(profile));
  }
  return {
    scenario,
    target: target.name,
    rps: out.requests / out.seconds,
    perCpu: cpu > 0 ? out.requests / cpu : 0,
    busy: cpu / out.seconds,
    loadBusy: load0 && load1 ? (load1.busy - load0.busy) / (load1.total - load0.total) : undefined,
    generatorBusy: (generator.user + generator.system) / 1e6 / out.seconds,
    p50: out.p50,
    p99: out.p99,
    serverP99: pauses.serverP99Ms,
    errors: out.errors,
    rss: rssMb(target.ready.pid),
    gcShare: pauses.totalMs / 1000 / out.seconds,
    gcMaxMs: pauses.maxMs,
    loopP99Ms: pauses.loopP99Ms,
    loopMaxMs: pauses.loopMaxMs,
    sendLate: out.sendLate,
    note: out.detail,
    signIn,
  };
}

function print(rows: Row[]) {
  const base = (scenario: string) => rows.find((r) => r.scenario === scenario && r.target === 'baseline');
  const fmt = (n: number, d = 0) => n.toFixed(d);
  const lines = [
    '| scenario | target | req/s | req per CPU-s | server CPU % | load core % (load gen) | p50 ms | p99 ms | in-server p99 ms | errors | RSS MB | GC % / longest ms | server loop delay p99 / max ms | load gen late p99 / max ms | vs baseline |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => {
      const b = base(r.scenario);
      const ratio = r.ratio !== undefined ? fmt(r.ratio, 2) : b && r.target !== 'baseline' ? fmt(r.rps / b.rps, 2) : '';
      const rps = r.range && r.range[0] !== r.range[1] ? `${fmt(r.rps)} (${fmt(r.range[0])}–${fmt(r.range[1])})` : r.peak ? `${fmt(r.rps)} (peak ${fmt(r.peak)})` : fmt(r.rps);
      const p99 = r.p99Range && r.p99Range[0] !== r.p99Range[1] ? `${fmt(r.p99, 1)} (${fmt(r.p99Range[0], 1)}–${fmt(r.p99Range[1], 1)})` : fmt(r.p99, 1);
      const late = r.sendLate ? `${fmt(r.sendLate.p99, 1)} / ${fmt(r.sendLate.max, 1)}` : '';
      return `| ${r.scenario} | ${r.target} | ${rps} | ${r.perCpu ? fmt(r.perCpu) : ''} | ${r.perCpu ? fmt(r.busy * 100) : ''} | ${r.loadBusy !== undefined ? `${fmt(r.loadBusy * 100)} (${fmt(r.generatorBusy * 100)})` : ''} | ${fmt(r.p50, 1)} | ${p99} | ${r.serverP99 ? fmt(r.serverP99, 1) : ''} | ${r.errors}${r.errors ? ' INVALID' : ''} | ${fmt(r.rss)} | ${fmt(r.gcShare * 100, 1)} / ${fmt(r.gcMaxMs, 1)} | ${fmt(r.loopP99Ms, 1)} / ${fmt(r.loopMaxMs, 1)} | ${late} | ${ratio} |`;
    }),
  ];
  console.log(lines.join('\n'));
  for (const r of rows.filter((x) => x.note)) console.log(`  ${r.scenario}/${r.target}: first error: ${r.note}`);
  const signIns = rows.filter((r) => r.signIn);
  if (signIns.length) {
    console.log('\nServer CPU a sign-in, ms: all its threads, its event loop, and its password hash (as the hashing threads count it)');
    console.log('| target | server CPU | event loop | password hash | hash share |\n|---|---:|---:|---:|---:|');
    for (const { target, signIn: s } of signIns) {
      const hash = s!.hashMs === undefined ? ['', ''] : [fmt(s!.hashMs, 1), `${fmt((100 * s!.hashMs) / s!.totalMs)} %`];
      console.log(`| ${target} | ${fmt(s!.totalMs, 1)} | ${fmt(s!.loopMs, 1)} | ${hash[0]} | ${hash[1]} |`);
    }
  }
}

/** Runs the mix for `minutes` per Latch target, a minute at a time, printing RSS and database size. */
async function soak(targets: Target[], minutes: number, connections: number) {
  console.log(`soak: ${minutes} min of the 1:8:8 mix per target (on PostgreSQL with autovacuum off, the bench vacuums and analyses each table at autovacuum's default thresholds)\n`);
  // The log's own size (SQLite) and the server's longest stall in the minute show what the purges,
  // which start once the first rows expire, cost while requests run.
  console.log('| target | minute | req/s | errors | RSS MB | database MB | of which log MB | provider rows | server loop delay max ms |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const target of targets.filter((t) => t.name !== 'baseline')) {
    const report = async (minute: number, rps: number, errors: number) => {
      const db = (await ask(target.child, 'dbsize')) as { bytes: number; logBytes?: number; providerRows: number };
      const { loopMaxMs } = (await ask(target.child, 'pauses')) as { loopMaxMs: number };
      const log = db.logBytes === undefined ? '' : (db.logBytes / 1e6).toFixed(1);
      console.log(`| ${target.name} | ${minute} | ${rps.toFixed(0)} | ${errors} | ${rssMb(target.ready.pid).toFixed(0)} | ${(db.bytes / 1e6).toFixed(1)} | ${log} | ${db.providerRows} | ${minute ? loopMaxMs.toFixed(1) : ''} |`);
    };
    await report(0, 0, 0);
    for (let minute = 1; minute <= minutes; minute += 1) {
      const out = await SCENARIOS.mix!.run(target.ready, { duration: 60, connections });
      await report(minute, out.requests / out.seconds, out.errors);
    }
  }
}

async function main() {
  const { scenario: scenarios, duration, warmup, connections, rounds: roundCount } = opts;
  const loginConnections = opts['login-connections'];
  const loginWarmup = opts['login-warmup'];
  const share = opts['latency-load'];
  const latencyConnections = opts['latency-connections'];

  const stalls = machineStalls(5);
  const targets: Target[] = [];
  for (const name of opts.targets) targets.push(await startTarget(name));
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model}; node ${process.version}; server pinned to core 0, load to core 1: ${pinned}`);
  console.log(`machine stalls: a thread spinning alone on the server's core lost ${stalls.lostMs.toFixed(0)} ms of 5 s, longest ${stalls.longestMs.toFixed(1)} ms`);
  console.log('| target | ready after start | idle RSS MB | storage ops per sign-in |\n|---|---:|---:|---:|');
  for (const t of targets) console.log(`| ${t.name} | ${t.startMs.toFixed(0)} ms | ${t.idleRssMb.toFixed(0)} | ${t.opsPerLogin} |`);
  console.log('');

  if (opts.soak) {
    await soak(targets, opts.soak, connections);
    for (const t of targets) t.child.kill('SIGTERM');
    return;
  }

  // Right before the first run that signs in, once.
  let warmed = !(loginWarmup > 0);
  const warmSignIns = async () => {
    if (warmed) return;
    warmed = true;
    console.log(`warm-up: ${loginWarmup} s of sign-ins per target (--login-warmup), so that V8 has optimised their code\n`);
    for (const target of targets) await SCENARIOS.login!.run(target.ready, { duration: loginWarmup, connections: loginConnections });
  };

  const rows: Row[] = [];
  for (const scenario of scenarios) {
    if (scenario === 'login' || scenario === 'mix') await warmSignIns();
    const c = scenario === 'login' ? loginConnections : connections;
    for (const target of targets) await SCENARIOS[scenario]!.run(target.ready, { duration: warmup, connections: c });
    const rounds: Row[][] = [];
    for (let round = 0; round < roundCount; round += 1) {
      const results: Row[] = [];
      for (const target of targets) results.push(await measure(target, scenario, () => SCENARIOS[scenario]!.run(target.ready, { duration, connections: c })));
      rounds.push(results);
    }
    rows.push(...medianRows(rounds));
  }

  // p99 of token and introspection at 70% of the peak, alone and during a burst of logins, with
  // requests sent at a steady rate (open loop), in rounds interleaved like the peak runs. The peak
  // is measured again just before each paced run: this VM's speed drifts by half from one minute to
  // the next, and 70 % of a peak measured minutes earlier in a fast spell was the whole core in a
  // slower one (the ceiling's p50 2 s).
  if (opts['latency-check']) {
    const at = `@${Math.round(share * 100)}%`;
    for (const scenario of ['cc-opaque', 'cc-jwt', 'introspection'].filter((s) => scenarios.includes(s))) {
      await warmSignIns();
      const ops = new Map<string, () => Promise<void>>();
      const rounds: Row[][] = [];
      for (let round = 0; round < roundCount; round += 1) {
        const results: Row[] = [];
        for (const target of targets) {
          // Over as many connections as the paced run: the server's capacity, not what 32 clients
          // that wait for each answer draw from it (with the group-commit wait, 32 left Latch's core
          // 64-83 % busy, and 70 % of that peak was about 60 % of its capacity).
          const now = await SCENARIOS[scenario]!.run(target.ready, { duration: PEAK_AGAIN_SECONDS, connections: latencyConnections });
          const peak = now.requests / now.seconds;
          // Answers still on their way, and the collection they leave, are not the paced run's.
          await new Promise((r) => setTimeout(r, 500));
          const load = { duration, connections: latencyConnections, rate: Math.round(peak * share) };
          let op = ops.get(target.name);
          if (!op) {
            op = await SCENARIOS[scenario]!.request!(target.ready, latencyConnections);
            ops.set(target.name, op);
            // Unmeasured first, as before the peak runs: a cold pool (connections opened, the load
            // generator's code not yet compiled) put 40-70 ms into the p99 of a trivial server.
            await paced({ ...load, duration: warmup }, op);
          }
          const send = op;
          results.push({ ...(await measure(target, `${scenario}${at}`, () => paced(load, send))), peak });
          const burst = await loginBurst(target.ready, { duration, connections: loginConnections });
          results.push({ ...(await measure(target, `${scenario}${at}+logins`, () => paced(load, send))), peak });
          const logins = await burst.done;
          results.push({ ...results.at(-1)!, scenario: `${scenario}${at}+logins: the logins`, rps: logins.requests / logins.seconds, peak: undefined, perCpu: 0, p50: logins.p50, p99: logins.p99, serverP99: 0, errors: logins.errors, sendLate: undefined });
        }
        rounds.push(results);
      }
      rows.push(...medianP99Rows(rounds));
    }
  }
  print(rows);
  for (const t of targets) t.child.kill('SIGTERM');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
