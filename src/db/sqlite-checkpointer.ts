import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * The log restarts from its beginning only at a write that finds it wholly copied into the
 * database file, and the thread's checkpoints, racing a steady stream of commits, seldom leave it
 * so. Past this many frames (about 16 MB) the store holds its writes for the last checkpoint of
 * restartLog (a few ms), so that the next write restarts the log.
 */
export const RESTART_LOG_FRAMES = 4_000;

/**
 * A connection checkpoints the write-ahead log itself, inside the commit that takes the log past
 * this many pages (about 40 MB): a backstop for writes the store cannot hold (Prisma's). That
 * checkpoint syncs the file on the event loop, 10-25 ms here, and lets the log restart.
 */
export const CHECKPOINT_BACKSTOP_PAGES = 10_000;

// The thread's whole program (CommonJS): its own connection, and every `intervalMs`, or when asked,
// a PASSIVE checkpoint, which copies committed pages from the log into the database file and
// syncs it without waiting for or blocking readers and writers. It reports each one, and ends
// after `idleMs` without new pages.
const PROGRAM = `
const { parentPort, workerData: w } = require('node:worker_threads');
const db = new (require(w.driver))(w.file, { fileMustExist: true });
db.pragma('synchronous = NORMAL');
db.pragma('wal_autocheckpoint = 0');
let last = -1, idle = 0;
function checkpoint(asked) {
  const [{ log, checkpointed }] = db.pragma('wal_checkpoint(PASSIVE)');
  parentPort.postMessage({ log, checkpointed, asked });
  return { log, checkpointed };
}
const timer = setInterval(() => {
  const { log, checkpointed } = checkpoint(false);
  idle = log === last && checkpointed === log ? idle + w.intervalMs : 0;
  last = log;
  if (idle >= w.idleMs) stop();
}, w.intervalMs);
function stop() { clearInterval(timer); db.close(); parentPort.close(); }
parentPort.on('message', (m) => (m === 'checkpoint' ? checkpoint(true) : stop()));
`;

export type CheckpointerOptions = { intervalMs?: number; idleMs?: number; onError?: (err: Error) => void };

/**
 * Moves SQLite's checkpoints off the event loop. A checkpoint copies every page written since
 * the last one and syncs the file: about 15 µs a page here, so 15-20 ms for the 1,000 pages a
 * connection lets accumulate by default, a stall every few hundred issued tokens. On a thread of
 * its own it runs beside the event loop, or takes turns with it on a single core.
 *
 * It runs at the process's own priority, not below it like the thread pool: the copying has to
 * be done by someone, and a thread below a saturated event loop is starved while it holds the
 * checkpoint lock, so neither it nor the connections' backstop can checkpoint and the log grows
 * without bound (measured: 134 MB in 10 s of client credentials on one core at nice 19; 26-41
 * MB at the process's priority).
 *
 * The thread (about 20 MB) starts with the first write after start or after `idleMs` of quiet,
 * so an idle server does not carry it.
 */
export function createCheckpointer(file: string, { intervalMs = 100, idleMs = 60_000, onError = () => {} }: CheckpointerOptions = {}) {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  let worker: Worker | undefined;
  /** Frames in the log at the last checkpoint. */
  let logFrames = 0;
  /** Callers of checkpointNow, in the order the thread answers them. */
  const asked: ((whole: boolean) => void)[] = [];
  let restarting = false;
  type Report = { log: number; checkpointed: number; asked: boolean };
  return {
    /** Called on every write: starts the thread if it is not running. */
    wake() {
      if (worker) return;
      const started = new Worker(PROGRAM, { eval: true, workerData: { file, driver, intervalMs, idleMs } });
      started.unref();
      started.on('message', (r: Report) => {
        // After an asked checkpoint, the log counts as empty until the thread's next report: a log
        // copied whole restarts at the next write, and one a reader kept from being copied whole
        // is asked for again no sooner than that, not at every commit.
        logFrames = r.asked ? 0 : r.log;
        if (r.asked) asked.shift()?.(r.checkpointed === r.log);
      });
      started.on('error', onError);
      started.on('exit', () => {
        if (worker === started) worker = undefined;
        for (const resolve of asked.splice(0)) resolve(false);
      });
      worker = started;
    },
    get running() {
      return worker !== undefined;
    },
    get logFrames() {
      return logFrames;
    },
    /**
     * A checkpoint now, between the thread's own: true when it copied the whole log, so that the
     * next write restarts the log from its beginning (if no write came in between).
     */
    checkpointNow(): Promise<boolean> {
      this.wake();
      return new Promise((resolve) => {
        asked.push(resolve);
        worker!.postMessage('checkpoint');
      });
    },
    /**
     * Lets the log restart: a checkpoint while writes go on, then a second one, for the pages
     * written meanwhile, which `hold` is given to hold writes until it ends. Holding them for one
     * checkpoint straight away would make them wait for up to `intervalMs` of pages to be copied
     * (5-20 ms with a busy event loop on the same core, against 2-5 ms for the second checkpoint).
     * Does nothing while a restart is under way, and skips the hold if the thread was stopped.
     */
    async restartLog(hold: (copied: Promise<boolean>) => void): Promise<void> {
      if (restarting) return;
      restarting = true;
      try {
        await this.checkpointNow();
        if (!worker) return;
        const copied = this.checkpointNow();
        hold(copied);
        await copied;
      } finally {
        restarting = false;
      }
    },
    /** Ends the thread after its current checkpoint; it closes its connection. */
    async stop() {
      const running = worker;
      worker = undefined;
      if (!running) return;
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.postMessage('stop');
      const timeout = setTimeout(() => void running.terminate(), 5_000);
      await exited;
      clearTimeout(timeout);
    },
  };
}
export type Checkpointer = ReturnType<typeof createCheckpointer>;
