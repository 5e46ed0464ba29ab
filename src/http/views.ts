import ejs from 'ejs';
import { fromRoot } from '../paths.js';
import { join } from 'node:path';

const VIEWS = fromRoot('views');

export type Views = { render(view: string, locals: Record<string, unknown>): Promise<string> };

/** Renders views/<view>.ejs inside views/layout.ejs. Templates are compiled once unless in development. */
export function createViews(options: { cache: boolean; productName?: string }): Views {
  const render = (file: string, locals: Record<string, unknown>) =>
    ejs.renderFile(join(VIEWS, `${file}.ejs`), locals, { cache: options.cache, async: false });
  return {
    async render(view, locals) {
      const page = { productName: options.productName ?? 'Latch', title: '', ...locals };
      const body = await render(view, page);
      return render('layout', { ...page, body });
    },
  };
}
