import { CookieJar } from 'tough-cookie';

export type Page = { status: number; url: string; html: string; headers: Headers };

/** A minimal browser: a cookie jar and manual redirects, so tests can see every hop. */
export function createUserAgent() {
  const jar = new CookieJar();

  async function request(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const cookie = await jar.getCookieString(url);
    if (cookie) headers.set('cookie', cookie);
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) await jar.setCookie(c, url);
    return res;
  }

  /** Follows redirects until a page answers or the next hop leaves for `stopAt` (e.g. the RP's callback). */
  async function navigate(url: string, init: RequestInit = {}, stopAt?: string): Promise<Page> {
    let res = await request(url, init);
    let current = url;
    for (let hops = 0; res.status >= 300 && res.status < 400 && hops < 20; hops += 1) {
      const next = new URL(res.headers.get('location')!, current).toString();
      if (stopAt && next.startsWith(stopAt)) return { status: res.status, url: next, html: '', headers: res.headers };
      current = next;
      res = await request(current);
    }
    return { status: res.status, url: current, html: await res.text(), headers: res.headers };
  }

  /** Submits a form of the current page: its action, hidden fields and the given values. */
  async function submit(page: Page, action: string | RegExp, values: Record<string, string> = {}, stopAt?: string) {
    const form = findForm(page.html, action);
    const body = new URLSearchParams({ ...form.hidden, ...values });
    const target = new URL(form.action, page.url).toString();
    return navigate(target, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } }, stopAt);
  }

  return { jar, request, navigate, submit };
}

export function findForm(html: string, action: string | RegExp) {
  const forms = [...html.matchAll(/<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/g)];
  const match = forms.find(([, a]) => (typeof action === 'string' ? a!.endsWith(action) : action.test(a!)));
  if (!match) throw new Error(`no form with action ${action} in page:\n${html.slice(0, 2000)}`);
  const hidden: Record<string, string> = {};
  for (const [, name, value] of match[2]!.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)) hidden[name!] = value!;
  return { action: match[1]!.replace(/&amp;/g, '&'), hidden };
}
