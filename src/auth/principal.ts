import type { User } from '../users/users.service.js';

/** Who is calling a management endpoint. */
export type Principal =
  | { kind: 'user'; user: User; clientId: string; grantId?: string }
  // A client-credentials token of a client an admin gave the latch:admin scope.
  | { kind: 'service'; clientId: string }
  // An app's API key: that app's management calls only.
  | { kind: 'apiKey'; clientId: string };

export const isAdmin = (p: Principal) => p.kind === 'service' || (p.kind === 'user' && p.user.isAdmin);
export const isStaff = (p: Principal) => isAdmin(p) || (p.kind === 'user' && p.user.isStaff);
export const isDeveloper = (p: Principal) => isAdmin(p) || (p.kind === 'user' && p.user.isDeveloper);

/** The id written to the audit log as the actor. */
export const actorId = (p: Principal) => (p.kind === 'user' ? p.user.id : `client:${p.clientId}`);
