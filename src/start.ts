// `npm start`'s entry: on Node 22 the process starts again, in place (execve: same pid, no second
// process), with AsyncContextFrame turned on (see context-frame.ts), then runs main.ts. Worker
// processes (WORKERS) inherit the flag. Where execve is missing (Windows), it runs as it is;
// `node dist/src/main.js` runs without it.
import { currentRuntime, optionsWithContextFrame } from './context-frame.js';

const relaunch = optionsWithContextFrame(currentRuntime());
if (relaunch && typeof process.execve === 'function') {
  process.execve(process.execPath, [process.execPath, ...relaunch, ...process.argv.slice(1)], process.env);
}
await import('./main.js');
