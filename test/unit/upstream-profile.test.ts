import { describe, expect, it } from 'vitest';
import type { Connection } from '../../src/federation/connections.service.js';
import { configuredEndpoints, profileFrom, UpstreamError } from '../../src/federation/upstream.js';

const mapping = { subject: 'sub', email: 'email', emailVerified: 'email_verified', name: 'name', givenName: 'given_name', familyName: 'family_name', picture: 'picture', username: 'preferred_username' };

describe('an upstream profile', () => {
  it('cuts long names to their limit on a whole character', () => {
    // 199 letters and an emoji (two UTF-16 units): 201 units, cut at 200 would halve the emoji.
    const name = `${'a'.repeat(199)}😀`;
    expect(profileFrom({ sub: 'u1', name }, mapping).name).toBe('a'.repeat(199));
    expect(profileFrom({ sub: 'u1', name: `${'a'.repeat(198)}😀b` }, mapping).name).toBe(`${'a'.repeat(198)}😀`);
  });

  it('never cuts an identifier: a subject too long is refused, an email too long is no email', () => {
    const long = 'x'.repeat(255);
    expect(profileFrom({ sub: long }, mapping).subject).toBe(long);
    // Two subjects alike in their first 255 characters must not become one account.
    expect(() => profileFrom({ sub: `${long}a` }, mapping)).toThrow(UpstreamError);
    expect(() => profileFrom({ sub: `${long}a`, id: 42 }, mapping)).toThrow(UpstreamError);
    expect(profileFrom({ sub: 'u1', email: `${'e'.repeat(250)}@x.io` }, mapping).email).toBeUndefined();
    expect(profileFrom({ id: 42 }, mapping).subject).toBe('42');
  });

  it('refuses claims holding a NUL or a lone surrogate as an invalid response', () => {
    for (const claims of [{ sub: 'a\u0000b' }, { sub: 'u1', given_name: 'Em\ud800ma' }]) {
      const err = (() => {
        try {
          profileFrom(claims, mapping);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(UpstreamError);
      expect((err as UpstreamError).reason).toBe('invalid_response');
    }
  });
});

describe('the endpoints a connection is configured to call', () => {
  const connection = (fields: Partial<Connection>) => ({ kind: 'oidc', issuer: null, authorizationUrl: null, tokenUrl: null, userinfoUrl: null, scopes: '', claimMapping: null, ...fields }) as Connection;

  it('are an OIDC kind\'s issuer alone: an unused loopback http field cannot allow plain http for its discovery', () => {
    const c = connection({ issuer: 'https://sso.example', userinfoUrl: 'http://localhost/never-used', tokenUrl: 'http://127.0.0.1/unused' });
    expect(configuredEndpoints(c)).toEqual(['https://sso.example']);
    expect(configuredEndpoints(connection({ kind: 'google', userinfoUrl: 'http://localhost/x' }))).toEqual(['https://accounts.google.com']);
  });

  it('are an OAuth 2 kind\'s three, whatever its issuer field says', () => {
    const c = connection({ kind: 'oauth2', issuer: 'http://localhost/x', authorizationUrl: 'https://a.example/auth', tokenUrl: 'https://a.example/token', userinfoUrl: 'https://a.example/me' });
    expect(configuredEndpoints(c)).toEqual(['https://a.example/auth', 'https://a.example/token', 'https://a.example/me']);
  });
});
