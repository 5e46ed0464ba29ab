import { describe, expect, it } from 'vitest';
import { fieldChanges } from '../../src/audit/changes.js';
import { auditDetail } from '../../src/http/routes/admin-audit-detail.js';

describe('fieldChanges (what an edit changed, for the audit log)', () => {
  it('names only the fields that changed, with their old and new values', () => {
    const before = { name: 'Shop', trusted: false, redirectUris: ['https://a.example/cb'], scopes: ['openid'] };
    const after = { name: 'Shop', trusted: true, redirectUris: ['https://a.example/cb', 'https://b.example/cb'], scopes: ['openid'] };
    expect(fieldChanges(before, after)).toEqual({
      trusted: { from: false, to: true },
      redirectUris: { from: ['https://a.example/cb'], to: ['https://a.example/cb', 'https://b.example/cb'] },
    });
    expect(fieldChanges(before, { ...before })).toEqual({});
  });

  it('keeps a cleared or new value as null, so it survives JSON', () => {
    expect(fieldChanges<Record<string, unknown>>({ issuer: 'https://idp.example', name: undefined }, { issuer: null, name: 'New' })).toEqual({
      issuer: { from: 'https://idp.example', to: null },
      name: { from: null, to: 'New' },
    });
    expect(JSON.parse(JSON.stringify(fieldChanges({ a: undefined }, { a: 1 })))).toEqual({ a: { from: null, to: 1 } });
  });

  it('records only that a secret changed: named by the caller, or by its name', () => {
    const changes = fieldChanges(
      { clientSecret: 'sealed-old', password: 'hash-old', pin: '1234', tokenUrl: 'https://a.example/token', accessTokenTtl: 60 },
      { clientSecret: 'sealed-new', password: 'hash-new', pin: '9876', tokenUrl: 'https://b.example/token', accessTokenTtl: 90 },
      { secrets: ['pin'] },
    );
    expect(changes).toEqual({
      clientSecret: { changed: true },
      password: { changed: true },
      pin: { changed: true },
      tokenUrl: { from: 'https://a.example/token', to: 'https://b.example/token' },
      accessTokenTtl: { from: 60, to: 90 },
    });
    expect(JSON.stringify(changes)).not.toMatch(/old|new|1234|9876/);
    // An unchanged secret is not mentioned.
    expect(fieldChanges({ clientSecret: 's' }, { clientSecret: 's' })).toEqual({});
  });
});

describe('auditDetail (the console audit log, in words)', () => {
  it('shows each change on its own line, lists by what they gained and lost, and the rest as JSON', () => {
    expect(auditDetail({ clientId: 'c1', fields: ['name', 'scopes', 'redirectUris'], changes: { scopes: { from: ['openid', 'email'], to: ['email', 'openid'] }, redirectUris: { from: ['https://a/cb'], to: ['https://b/cb'] }, trusted: { from: false, to: true }, clientSecret: { changed: true } } })).toEqual({
      changes: [
        { field: 'scopes', text: '["openid","email"] → ["email","openid"]' },
        { field: 'redirectUris', text: 'added https://b/cb; removed https://a/cb' },
        { field: 'trusted', text: 'false → true' },
        { field: 'clientSecret', text: 'changed (the value is not recorded)' },
      ],
      detailText: '{"clientId":"c1"}',
    });
  });

  it('says an edit changed nothing, leaves settings already shown as changes out, and keeps older events as they were', () => {
    expect(auditDetail({ fields: ['name'], changes: {} })).toEqual({ changes: [], detailText: '' });
    expect(auditDetail({ idTokenTtl: 900, changes: { idTokenTtl: { from: 700, to: 900 } } })).toEqual({ changes: [{ field: 'idTokenTtl', text: '700 → 900' }], detailText: '' });
    expect(auditDetail({ changes: { givenName: { from: '', to: null } } }).changes).toEqual([{ field: 'givenName', text: '(empty) → (none)' }]);
    expect(auditDetail({ fields: ['name'] })).toEqual({ detailText: '{"fields":["name"]}' });
    expect(auditDetail(null)).toEqual({ detailText: '' });
  });
});
