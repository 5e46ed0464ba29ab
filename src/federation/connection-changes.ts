import { fieldChanges } from '../audit/changes.js';
import type { Connection } from './connections.service.js';

/** What the audit log compares of a connection before and after an edit: its stored settings. */
const auditView = (c: Connection) => ({
  name: c.name,
  clientId: c.clientId,
  // Sealed, and sealed anew when replaced: compared only to tell whether it changed, never logged.
  clientSecret: c.clientSecret,
  issuer: c.issuer,
  authorizationUrl: c.authorizationUrl,
  tokenUrl: c.tokenUrl,
  userinfoUrl: c.userinfoUrl,
  scopes: c.scopes ? c.scopes.split(' ') : [],
  claimMapping: c.claimMapping ?? {},
  enabled: c.enabled,
});

/** The audit log's record of a connection edit: each changed field from old to new, the client secret only as changed. */
export const connectionChanges = (before: Connection, after: Connection) => fieldChanges(auditView(before), auditView(after), { secrets: ['clientSecret'] });
