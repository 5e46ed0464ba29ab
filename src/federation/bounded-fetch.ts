import type { CustomFetch } from 'openid-client';

/**
 * The most Latch reads of any one upstream answer: discovery documents, key sets, token answers
 * and account details are a few kilobytes; a larger answer is a broken or hostile upstream.
 */
export const UPSTREAM_BODY_LIMIT = 1024 * 1024;

/** An upstream answer longer than the limit; reading stopped there. */
export class UpstreamBodyTooLarge extends Error {
  constructor(
    readonly url: string,
    readonly limit: number,
  ) {
    super(`the answer of ${new URL(url).origin}${new URL(url).pathname} is larger than ${limit} bytes`);
    this.name = 'UpstreamBodyTooLarge';
  }
}

// Statuses whose Response may not carry a body, even an empty one.
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/**
 * openid-client's customFetch for every request to an upstream provider: the answer's body is
 * read here, and at most `limit` bytes of it (after decompression), so that no upstream can make
 * Latch buffer an unbounded body. A longer one (by its Content-Length or as it streams) ends the
 * connection and throws UpstreamBodyTooLarge; otherwise the library gets the answer as it came.
 */
export function boundedFetch(limit = UPSTREAM_BODY_LIMIT): CustomFetch {
  return async (url, options) => {
    // The library's body type (a Uint8Array of any buffer) is one fetch sends; only the typings differ.
    const res = await fetch(url, options as RequestInit);
    const declared = Number(res.headers.get('content-length'));
    if (declared > limit) {
      await res.body?.cancel().catch(() => {});
      throw new UpstreamBodyTooLarge(url, limit);
    }
    if (!res.body) return res;
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel().catch(() => {});
        throw new UpstreamBodyTooLarge(url, limit);
      }
      chunks.push(value);
    }
    // The body is now plain bytes: its length and encoding on the wire no longer describe it.
    const headers = new Headers(res.headers);
    headers.delete('content-length');
    headers.delete('content-encoding');
    const body = NULL_BODY_STATUSES.has(res.status) ? null : Buffer.concat(chunks);
    return new Response(body, { status: res.status, statusText: res.statusText, headers });
  };
}
