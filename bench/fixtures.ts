// What every benchmark target is seeded with, so the same scenarios run against each.
export const USER = { email: 'bench@example.com', username: 'bench', password: 'violet kettle orbit 42' };
export const REDIRECT_URI = 'http://127.0.0.1:9/callback';
export const RESOURCE = { indicator: 'https://api.bench.test', scopes: ['read', 'write'] };

/** Sent by a target process once it listens. */
export type Ready = {
  url: string;
  issuer: string;
  pid: number;
  client: { id: string; secret: string };
};
