import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

// With WORKERS=N, /metrics reaches one worker at random: alone, its answer would count that
// worker's requests only, and Prometheus would see counters jump between workers' values. So the
// worker asked passes the question to the primary, which collects every serving worker's metrics
// and sums them (prom-client's aggregation: counters and histograms add up).
const ASK_ALL = 'latch:metrics';
const ALL = 'latch:metrics-all';
const ASK_OWN = 'latch:metrics-own';
const OWN = 'latch:metrics-own-answer';
// A worker busy or stuck for this long is left out of one scrape rather than failing it.
const OWN_WITHIN_MS = 2_000;
const ALL_WITHIN_MS = 5_000;

type Message = { type?: string; id?: number; text?: string; error?: string; metrics?: object[] };

let asked = 0;
/** Sends `question` to `to` and resolves with its answer (matched by id), or undefined after `ms`. */
type Peer = { send(m: Message, done: (err: Error | null) => void): unknown; on(e: 'message', l: (m: Message) => void): unknown; off(e: 'message', l: (m: Message) => void): unknown };

// Sent with a callback: a peer that died meanwhile is a failed send, not an 'error' event that
// would bring the process down.
const sendTo = (to: { send(m: Message, done: (err: Error | null) => void): unknown }, message: Message) => to.send(message, () => {});

function ask(to: Peer, question: Message, answer: string, ms: number) {
  const id = (asked += 1);
  return new Promise<Message | undefined>((resolve) => {
    const done = (value: Message | undefined) => {
      clearTimeout(timer);
      to.off('message', listen);
      resolve(value);
    };
    const listen = (m: Message) => m?.type === answer && m.id === id && done(m);
    const timer = setTimeout(() => done(undefined), ms);
    to.on('message', listen);
    to.send({ ...question, id }, (err) => err && done(undefined));
  });
}

/**
 * In the primary: answers a worker's request for the metrics of every worker `serving` counts
 * (a worker still starting has none worth waiting for).
 */
export function gatherWorkerMetrics(serving: (worker: Worker) => boolean) {
  cluster.on('message', (from, msg: Message) => {
    if (msg?.type !== ASK_ALL) return;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && w.isConnected() && serving(w));
    Promise.all(workers.map((w) => ask(w, { type: ASK_OWN }, OWN, OWN_WITHIN_MS)))
      .then((answers) => AggregatorRegistry.aggregate(answers.flatMap((a) => (a?.metrics ? [a.metrics] : []))).metrics())
      .then(
        (text) => from.isConnected() && sendTo(from, { type: ALL, id: msg.id, text }),
        (err: Error) => from.isConnected() && sendTo(from, { type: ALL, id: msg.id, error: err.message }),
      );
  });
}

/**
 * What /metrics answers: this process's registry, or, in a worker of `WORKERS=N`, the sum over
 * every serving worker (from the primary). The worker also answers the primary's requests for its
 * own metrics from the start.
 */
export function metricsText(registry: Registry, inCluster: boolean): () => Promise<string> {
  if (!inCluster || !cluster.isWorker) return () => registry.metrics();
  const primary: Peer = { send: (m, done) => process.send!(m, undefined, undefined, done), on: process.on.bind(process), off: process.off.bind(process) };
  process.on('message', (msg: Message) => {
    if (msg?.type !== ASK_OWN) return;
    registry.getMetricsAsJSON().then((metrics) => sendTo(primary, { type: OWN, id: msg.id, metrics }), () => sendTo(primary, { type: OWN, id: msg.id }));
  });
  return async () => {
    const answer = await ask(primary, { type: ASK_ALL }, ALL, ALL_WITHIN_MS);
    if (answer?.text === undefined) throw new Error(`the metrics of all workers: ${answer?.error ?? 'the primary process did not answer'}`);
    return answer.text;
  };
}
