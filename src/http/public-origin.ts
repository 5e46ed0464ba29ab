import type Koa from 'koa';

/**
 * Makes PUBLIC_URL the origin every request is seen at. oidc-provider builds discovery's endpoint
 * URLs and its redirects from the request's href, and Koa lets a cookie be Secure only when the
 * request's protocol is https. Read from the Host header (or X-Forwarded-Host/Proto), a client
 * could make discovery name a host of its choosing (and poison a cache in front), and behind a
 * TLS-terminating proxy without TRUST_PROXY every page that sets a Secure cookie failed. Defined
 * once on the app's request prototype, so no request pays for it. (TRUST_PROXY still decides
 * which address is the client's.)
 */
export function servePublicOrigin(app: Koa, publicUrl: string) {
  const { protocol, host, hostname, origin } = new URL(publicUrl);
  const scheme = protocol.slice(0, -1);
  const at = (value: string) => ({ get: () => value, configurable: true });
  // Not `origin`: in Koa that is the request's Origin header, which CSRF checks must see as sent.
  Object.defineProperties(app.request, {
    protocol: at(scheme),
    host: at(host),
    hostname: at(hostname),
    href: {
      configurable: true,
      get(this: Koa.Request) {
        // An absolute-form target (GET http://other/path) keeps its path, not its host.
        const target = /^https?:\/\//i.test(this.originalUrl) ? new URL(this.originalUrl) : undefined;
        return origin + (target ? target.pathname + target.search : this.originalUrl);
      },
    },
  });
}
