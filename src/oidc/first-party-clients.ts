import type { Db } from '../db/prisma.js';

// Built-in clients, kept in step with the configuration at every start.
export const API_CLIENT_ID = 'latch-api';
export const ACCOUNT_CLIENT_ID = 'latch-account';

export const PASSWORD_GRANT = 'password';
export const MAGIC_LINK_GRANT = 'urn:latch:params:grant-type:magic-link';

/**
 * latch-api: the first-party JSON login (/api/auth/*): a public client allowed the password and
 * magic-link grants, which no other client has unless an admin grants it.
 * latch-account: the /account pages signing in to the IdP itself (response_type=none).
 */
export async function ensureFirstPartyClients(prisma: Db, publicUrl: string, productName: string) {
  const clients = [
    {
      clientId: API_CLIENT_ID,
      name: `${productName} API`,
      metadata: {
        client_id: API_CLIENT_ID,
        client_name: `${productName} API`,
        token_endpoint_auth_method: 'none',
        grant_types: [PASSWORD_GRANT, MAGIC_LINK_GRANT, 'refresh_token'],
        response_types: [],
        redirect_uris: [],
      },
    },
    {
      clientId: ACCOUNT_CLIENT_ID,
      name: `${productName} account`,
      metadata: {
        client_id: ACCOUNT_CLIENT_ID,
        client_name: `${productName} account`,
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code'],
        response_types: ['none'],
        redirect_uris: [`${publicUrl}/account/callback`],
        post_logout_redirect_uris: [`${publicUrl}/account`],
      },
    },
  ];
  for (const c of clients) {
    await prisma.client.upsert({
      where: { clientId: c.clientId },
      create: { ...c, trusted: true },
      update: { name: c.name, metadata: c.metadata, trusted: true },
    });
  }
}
