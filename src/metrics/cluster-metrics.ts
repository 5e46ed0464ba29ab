import cluster from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

// With WORKERS=N, /metrics reaches one worker at random: alone, its answer would count that
// worker's requests only, and Prometheus would see counters jump between workers' values. So a
// worker asks the primary, which gathers every worker's registry (prom-client's
// AggregatorRegistry sums counters and histograms) and answers with the whole.
const ASK = 'latch:metrics';
const ANSWER = 'latch:metrics-answer';
const ANSWER_WITHIN_MS = 10_000;

type Answer = { type: typeof ANSWER; id: number; text?: string; error?: string };

/** In the primary: answers workers' requests for every worker's metrics. */
export function gatherWorkerMetrics() {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, msg: { type?: string; id?: number }) => {
    if (msg?.type !== ASK) return;
    const reply = (answer: Omit<Answer, 'type' | 'id'>) => worker.isConnected() && worker.send({ type: ANSWER, id: msg.id, ...answer });
    aggregator.clusterMetrics().then((text) => reply({ text }), (err: Error) => reply({ error: err.message }));
  });
}

/**
 * The text /metrics answers with: this process's registry, or in a cluster worker, every
 * worker's, summed by the primary. (Each worker registers its registry for the primary to read.)
 */
export function metricsText(registry: Registry): () => Promise<string> {
  if (!cluster.isWorker) return () => registry.metrics();
  AggregatorRegistry.setRegistries(registry);
  new AggregatorRegistry(); // answers the primary's requests for this worker's metrics
  let next = 0;
  const waiting = new Map<number, (answer: Answer) => void>();
  process.on('message', (msg: Answer) => {
    if (msg?.type === ANSWER) waiting.get(msg.id)?.(msg);
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = (next += 1);
      const timer = setTimeout(() => settle({ type: ANSWER, id, error: 'the primary process did not answer' }), ANSWER_WITHIN_MS);
      const settle = (answer: Answer) => {
        clearTimeout(timer);
        waiting.delete(id);
        if (answer.error !== undefined || answer.text === undefined) reject(new Error(`metrics of all workers: ${answer.error ?? 'no answer'}`));
        else resolve(answer.text);
      };
      waiting.set(id, settle);
      process.send!({ type: ASK, id });
    });
}
