// A burst of complete sign-ins from a process of its own, started by bench/run.ts for the `@70%+logins`
// runs. Each sign-in parses pages, keeps a cookie jar and leaves garbage; made from the process that
// paces the token requests, its collections (scavenges of 4-12 ms) stopped the sender and counted
// in the token requests' latency. Sign-ins come from other clients than a resource server's anyway.
import type { Ready } from './fixtures.js';
import { signInFlow } from './flow.js';
import { loop, type Load } from './scenarios.js';

type Go = { type: 'go'; ready: Ready; load: Load };

process.on('message', (msg: Go) => {
  if (msg.type !== 'go') return;
  void loop(msg.load, async () => void (await signInFlow(msg.ready))).then((outcome) => {
    process.send!({ type: 'done', outcome }, () => process.exit(0));
  });
});
process.send!({ type: 'ready' });
